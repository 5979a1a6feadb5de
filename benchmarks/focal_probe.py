"""Where the focal findings live in the pretext trunk (issue 31, part 2): linear probes.

The default run's AxialNet reads ResNet-18's layer4 through a 4 x 4 grid and averages 16 slice
groups, and leaves the four focal findings at chance. This probe asks whether the frozen pretext
trunk holds them at all, and at which layer and pooling: per default-preset volume it pools each
of layer2 (16 x 16 cells), layer3 (8 x 8) and layer4 (4 x 4) over all slice groups and cells by
the mean, the max and the mean of the top k cells, and fits a logistic regression per label on
each (features standardised, C chosen on validation). Test AUROC is reported, never used to
choose.

    python -m benchmarks.focal_probe [--top-k 16]

The record is in docs/models.md ("A model that sees focal findings").
"""

from __future__ import annotations

import argparse
import time

import ctbench
import numpy as np
import torch
from ctbench.data.loader import VolumeDataset
from ctbench.experiments.runs import preset_pretext
from ctbench.plugins.architectures.components import resnet18_features
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

FOCAL = (  # the default preset's focal findings (issue 31)
    "h_great_vessel_calcification",
    "h_mediastinum_lymphadenopathy",
    "lung_mass",
    "lung_nodule",
)
LAYERS = {"layer2": 5, "layer3": 6, "layer4": 7}
"""Index of each ResNet layer in torchvision's children (conv1, bn1, relu, maxpool, layer1..4)."""


def default_split(split: str, seed: int = 0) -> VolumeDataset:
    """One split of the default phantom preset (generated when missing), unaugmented, as the
    run's caches of a frozen part's output read it."""
    source = ctbench.create_dataset("phantom", preset="default", seed=seed)
    source.materialise(progress=False)
    dataset = VolumeDataset(source, split)
    dataset.augment = False
    return dataset


def pooled_features(split: str, resnet: torch.nn.Sequential, top_k: int):
    """``({(layer, pooling): [N, C]}, labels [N, M])`` of one default-preset split."""
    dataset = default_split(split)
    rows: dict[tuple[str, str], list[np.ndarray]] = {}
    labels = []
    with torch.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            h = sample["x"]  # [H, 3, Y, X]
            for index, module in enumerate(resnet):
                h = module(h)
                layer = next((n for n, k in LAYERS.items() if k == index), None)
                if layer is None:
                    continue
                cells = h.permute(1, 0, 2, 3).flatten(1)  # [C, H * D1 * D2]
                k = min(top_k, cells.shape[1])
                for pooling, value in (
                    ("mean", cells.mean(1)),
                    ("max", cells.amax(1)),
                    (f"top{k}", cells.topk(k, dim=1).values.mean(1)),
                ):
                    rows.setdefault((layer, pooling), []).append(value.numpy())
            labels.append(sample["y"].numpy())
    return {key: np.stack(value) for key, value in rows.items()}, np.stack(labels)


def probe(train, valid, test) -> np.ndarray:
    """Test scores ``[N, M]`` of a logistic regression per label, C chosen on validation."""
    (xtr, ytr), (xva, yva), (xte, _) = train, valid, test
    scaler = StandardScaler().fit(xtr)
    xtr, xva, xte = scaler.transform(xtr), scaler.transform(xva), scaler.transform(xte)
    scores = np.zeros((len(xte), ytr.shape[1]))
    for m in range(ytr.shape[1]):
        fits = [
            LogisticRegression(C=c, max_iter=3000).fit(xtr, ytr[:, m])
            for c in (0.001, 0.01, 0.1, 1.0)
        ]
        best = max(fits, key=lambda f: roc_auc_score(yva[:, m], f.decision_function(xva)))
        scores[:, m] = best.decision_function(xte)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top-k", type=int, default=16)
    args = parser.parse_args()
    source = ctbench.create_dataset("phantom", preset="default")
    names = source.label_names
    resnet = resnet18_features(weights=preset_pretext(source, "phantom", "default")).eval()
    start = time.perf_counter()
    splits = {s: pooled_features(s, resnet, args.top_k) for s in ("train", "valid", "test")}
    print(
        f"features of {sum(len(v[1]) for v in splits.values())} volumes in "
        f"{time.perf_counter() - start:.0f} s"
    )
    focal = [names.index(n) for n in FOCAL]
    truth = splits["test"][1]
    for key in splits["train"][0]:
        data = [(splits[s][0][key], splits[s][1]) for s in ("train", "valid", "test")]
        scores = probe(*data)
        values = [roc_auc_score(truth[:, m], scores[:, m]) for m in range(len(names))]
        print(
            f"{key[0]:7s} {key[1]:6s} all mean {np.mean(values):.3f} median "
            f"{np.median(values):.3f} focal {np.mean([values[m] for m in focal]):.3f} ("
            + ", ".join(f"{values[m]:.2f}" for m in focal)
            + ")"
        )


if __name__ == "__main__":
    main()
