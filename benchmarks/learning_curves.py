"""Learning curves of the default run's recipe (issue 12): head warm-up on a frozen backbone.

For the pretext start (the cached weights ``ctbench run`` uses on the default preset) and for a
random ResNet-18, the backbone's output on the default preset's train, valid and test volumes
is computed once; AxialNet's head then trains on it as ``ctbench run`` does (Adam 1e-3, batch
4, 60 epochs), for three head seeds. Per epoch: training and validation loss, and the median
AUROC over the 12 labels on validation and test (test is reported, never used to choose).
The run keeps the epoch with the lowest validation loss; it is marked. From-scratch training
(``benchmarks/learning_recipes.py baseline``, JSON lines) can be overlaid with ``--scratch``.

    python benchmarks/learning_recipes.py baseline > scratch.jsonl
    python benchmarks/learning_curves.py --scratch scratch.jsonl --out docs/learning_curves.png

Prints one JSON line per (start, seed) with the kept epoch's figures, and saves the curves
beside the figure (``--replot`` redraws from them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ctbench
import numpy as np
import torch
from ctbench.data.loader import VolumeDataset
from ctbench.experiments.runs import preset_pretext
from ctbench.train.losses import classification_loss
from ctbench.train.warmup import BackboneHead, FrozenBackbone, cache_backbone_output, cached_batches
from learning_recipes import median_auroc  # beside it


def head_curve(weights: str | None, caches: dict, seed: int, epochs: int) -> list[dict]:
    torch.manual_seed(seed)
    options = {"weights": weights} if weights else {}
    model = ctbench.create_model("axialnet", 12, (16, 3, 128, 128), **options)
    head = BackboneHead(model)
    curve = []
    with FrozenBackbone(model):
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=1e-3, weight_decay=1e-7)
        generator = torch.Generator().manual_seed(seed * 100_003 + 99_991)
        train = caches["train"]
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train["y"]), generator=generator)
            losses = []
            for batch in cached_batches(train, order.split(4)):
                loss = classification_loss(head(batch["x"]), batch["y"])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            model.eval()
            record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses))}
            with torch.no_grad():
                for split in ("valid", "test"):
                    logits = torch.cat(
                        [
                            head(b["x"])
                            for b in cached_batches(
                                caches[split], torch.arange(len(caches[split]["y"])).split(8)
                            )
                        ]
                    )
                    truth = caches[split]["y"]
                    record[f"{split}_median"] = median_auroc(truth.numpy(), logits.numpy())[0]
                    if split == "valid":
                        record["valid_loss"] = float(classification_loss(logits, truth))
            curve.append(record)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--scratch", type=Path, default=None, help="learning_recipes.py output")
    parser.add_argument("--out", type=Path, default=Path("docs/learning_curves.png"))
    parser.add_argument("--replot", action="store_true", help="Only redraw from OUT's .json.")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        plot(saved["curves"], saved["scratch"], args.out)
        return
    torch.set_num_threads(2)
    source = ctbench.create_dataset("phantom", preset="default")
    source.materialise(progress=False)
    pretext = str(preset_pretext(source, "phantom", "default", log=print))
    curves = {}
    for start, weights in (("pretext", pretext), ("random", None)):
        torch.manual_seed(0)
        options = {"weights": weights} if weights else {}
        model = ctbench.create_model("axialnet", 12, (16, 3, 128, 128), **options)
        caches = {
            split: cache_backbone_output(model, VolumeDataset(source, split), batch_size=4)
            for split in ("train", "valid", "test")
        }
        curves[start] = [head_curve(weights, caches, seed, args.epochs) for seed in args.seeds]
        for seed, curve in zip(args.seeds, curves[start], strict=True):
            kept = min(curve, key=lambda r: r["valid_loss"])
            print(json.dumps({"start": start, "seed": seed, "kept": kept}), flush=True)
    scratch = None
    if args.scratch:
        scratch = [json.loads(line) for line in args.scratch.read_text().splitlines() if line]
    plot(curves, scratch, args.out)
    args.out.with_suffix(".json").write_text(json.dumps({"curves": curves, "scratch": scratch}))


def plot(curves: dict, scratch: list[dict] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"pretext": "#1f77b4", "random": "#7f7f7f"}
    for start, runs in curves.items():
        epochs = [r["epoch"] for r in runs[0]]
        for split, style in (("valid", "--"), ("test", "-")):
            values = np.array([[r[f"{split}_median"] for r in run] for run in runs])
            left.plot(
                epochs,
                values.mean(0),
                style,
                color=colours[start],
                label=f"{start} backbone, {split} (mean of {len(runs)} head seeds)",
            )
            if split == "test":
                left.fill_between(
                    epochs, values.min(0), values.max(0), color=colours[start], alpha=0.15
                )
        for run in runs:
            kept = min(run, key=lambda r: r["valid_loss"])
            left.plot(kept["epoch"], kept["test_median"], "o", color=colours[start], ms=4)
        losses = np.array([[r["valid_loss"] for r in run] for run in runs])
        right.plot(epochs, losses.mean(0), "--", color=colours[start], label=f"{start}, valid")
        losses = np.array([[r["train_loss"] for r in run] for run in runs])
        right.plot(epochs, losses.mean(0), "-", color=colours[start], label=f"{start}, train")
    if scratch:
        steps = [r["epoch"] for r in scratch]
        left.plot(
            steps,
            [r["test_median"] for r in scratch],
            "s-",
            color="#d62728",
            label="from scratch, full epochs (test)",
        )
    left.axhline(0.85, color="k", lw=0.8, ls=":", label="goal 0.85")
    left.set_xlabel("epoch: 48 optimiser steps of 4 volumes (head epochs; full from scratch)")
    left.set_ylabel("median AUROC over 12 labels")
    left.set_ylim(0.4, 1.0)
    left.legend(fontsize=7, loc="lower right")
    right.set_xlabel("head epoch")
    right.set_ylabel("binary cross-entropy")
    right.legend(fontsize=7)
    figure.suptitle("Default preset: AxialNet's head on a frozen backbone (dots: the epoch kept)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
