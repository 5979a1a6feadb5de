"""Which head lets ``hu-histogram`` calibrate (issue 31, part 1), measured on cached histograms.

The histograms are a fixed transform of the input, so they are computed once per default-preset
volume and each head trains on them as ``ctbench run`` trains it (Adam, lr 1e-3, batch 4, the
``cpu`` recipe's 60 head epochs, the epoch of least validation loss kept). Test AUROC is
reported, never used to choose. ``--reference`` also fits what the issue measured: per-organ
HU histograms of the phantom's own organ masks with a logistic regression per label (sklearn,
C chosen on validation) -- a ceiling that knows where the organs are.

    python -m benchmarks.hu_histogram_heads --heads full rank1 rank2 --reference

The record of what each head gave is in docs/models.md ("A calibration row").
"""

from __future__ import annotations

import argparse
import itertools
import time

import ctbench
import numpy as np
import torch
from ctbench.plugins.architectures.hu_histogram import HU_EDGES
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from benchmarks.focal_probe import FOCAL, default_split


def load(split: str, seed: int, model, *, organs: bool = False):
    """``(histograms [N, H, K, D1, D2], labels [N, M], organ histograms [N, O*K] or None)``."""
    dataset = default_split(split, seed)
    feats, labels, organ_rows = [], [], []
    with torch.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            feats.append(model.backbone_features(sample["x"].unsqueeze(0))[0])
            labels.append(sample["y"])
            if organs:
                case = dataset.load_case(i)
                organ_rows.append(organ_histograms(case.volume, case.organs))
    return (
        torch.stack(feats),
        torch.stack(labels).float(),
        np.stack(organ_rows) if organs else None,
    )


def organ_histograms(volume_hu: np.ndarray, organs: dict[str, np.ndarray]) -> np.ndarray:
    """Per organ of the phantom's ground truth, the share of its voxels in each HU band
    (hard counts), concatenated."""
    edges = np.asarray(HU_EDGES)
    rows = []
    for name in sorted(organs):
        values = volume_hu[organs[name]]
        counts = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
        rows.append(counts / max(len(values), 1))
    return np.concatenate(rows)


def aurocs(truth: np.ndarray, scores: np.ndarray, names: list[str]) -> dict[str, float]:
    return {
        name: float(roc_auc_score(truth[:, m], scores[:, m]))
        for m, name in enumerate(names)
        if 0 < truth[:, m].sum() < len(truth)
    }


def summary(values: dict[str, float]) -> str:
    focal = [values[n] for n in FOCAL if n in values]
    return (
        f"median {np.median(list(values.values())):.3f} mean {np.mean(list(values.values())):.3f}"
        f" focal {np.mean(focal):.3f}"
    )


def train_head(head: str, data, names, *, epochs, seed, grid, lr, standardise):
    """The model's head on cached histograms, as the run's head epochs train it."""
    torch.manual_seed(seed)
    (xtr, ytr), (xva, yva), (xte, yte) = data
    shape = (16, 3, 128, 128)
    options = {"grid": grid, "head": head, "standardise": standardise}
    model = ctbench.create_model("hu-histogram", len(names), shape, **options)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)
    best, best_state = float("inf"), None
    for _ in range(epochs):
        model.train()
        for batch in np.array_split(rng.permutation(len(xtr)), len(xtr) // 4):
            optimiser.zero_grad()
            loss_fn(model.from_backbone_features(xtr[batch]), ytr[batch]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            valid = loss_fn(model.from_backbone_features(xva), yva).item()
        if valid < best:
            best, best_state = valid, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    with torch.no_grad():
        test = model.from_backbone_features(xte).numpy()
    return aurocs(yte.numpy(), test, names), best


def reference(organ_data, names):
    """Per label, a logistic regression on per-organ histograms, C chosen on validation."""
    (otr, ytr), (ova, yva), (ote, yte) = organ_data
    scores = np.zeros(yte.shape)
    for m in range(ytr.shape[1]):
        if not 0 < ytr[:, m].sum() < len(ytr):
            continue
        fits = [
            LogisticRegression(C=c, max_iter=5000).fit(otr, ytr[:, m])
            for c in (0.1, 1.0, 10.0, 100.0, 1000.0)
        ]
        chosen = max(fits, key=lambda f: roc_auc_score(yva[:, m], f.decision_function(ova)))
        scores[:, m] = chosen.decision_function(ote)
    return aurocs(yte, scores, names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", nargs="*", default=["full", "rank1"])
    parser.add_argument("--grids", nargs="*", type=int, default=[8])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--standardise", nargs="*", default=["cell"], choices=["cell", "band"])
    args = parser.parse_args()
    names = ctbench.create_dataset("phantom", preset="default").label_names
    for grid in args.grids:
        trunk = ctbench.create_model("hu-histogram", len(names), (16, 3, 128, 128), grid=grid)
        start = time.perf_counter()
        splits = [
            load(split, args.data_seed, trunk, organs=args.reference)
            for split in ("train", "valid", "test")
        ]
        print(
            f"grid {grid}: histograms of {sum(len(s[0]) for s in splits)} volumes in "
            f"{time.perf_counter() - start:.0f} s"
        )
        if args.reference and grid == args.grids[0]:
            start = time.perf_counter()
            values = reference([(s[2], s[1].numpy()) for s in splits], names)
            print(
                f"reference (per-organ histograms, logistic regression): {summary(values)} "
                f"in {time.perf_counter() - start:.0f} s"
            )
            print("  " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
        for standardise, head, seed in itertools.product(args.standardise, args.heads, args.seeds):
            start = time.perf_counter()
            values, valid = train_head(
                head,
                [(s[0], s[1]) for s in splits],
                names,
                epochs=args.epochs,
                seed=seed,
                grid=grid,
                lr=args.lr,
                standardise=standardise,
            )
            print(
                f"grid {grid} {standardise} head {head} seed {seed}: {summary(values)}, best "
                f"valid loss {valid:.4f}, {time.perf_counter() - start:.0f} s"
            )
            print("  " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))


if __name__ == "__main__":
    main()
