"""Why the default run's AxialNet barely learns: recipes measured on the default phantom preset.

Trains AxialNet from random weights on preloaded default-preset volumes (no run folder, so a
recipe costs only its training) and prints, per epoch, the training loss and the median AUROC
over the 12 labels on validation and test (test is reported, never used to choose). A record of
what each recipe gave is in ``docs/learning-investigation.md``.

    python benchmarks/learning_recipes.py baseline
    python benchmarks/learning_recipes.py init --kaiming --prior
    python benchmarks/learning_recipes.py moredata --train-seeds 0 1 2
    python benchmarks/learning_recipes.py dead-units
"""

from __future__ import annotations

import argparse
import json
import math
import time

import ctbench
import numpy as np
import torch
from ctbench.data.augment import Augmentation
from ctbench.data.loader import VolumeDataset
from ctbench.runtime.memory_format import to_channels_last
from sklearn.metrics import roc_auc_score


def load_split(split: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs ``[N, H, 3, Y, X]`` and labels ``[N, M]`` of one default-preset split."""
    source = ctbench.create_dataset("phantom", preset="default", seed=seed)
    source.materialise(progress=False)
    dataset = VolumeDataset(source, split)
    samples = [dataset[i] for i in range(len(dataset))]
    return torch.stack([s["x"] for s in samples]), torch.stack([s["y"] for s in samples])


def median_auroc(truth: np.ndarray, scores: np.ndarray) -> tuple[float, list[float]]:
    values = [
        roc_auc_score(truth[:, m], scores[:, m])
        for m in range(truth.shape[1])
        if 0 < truth[:, m].sum() < len(truth)
    ]
    return float(np.median(values)), [round(v, 3) for v in values]


def augmented(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The run's flip/rotation, drawn per volume, on ``[B, H, 3, Y, X]``."""
    out = []
    for volume in x:
        h, c, y, w = volume.shape
        moved = Augmentation.draw(rng).apply(volume.reshape(h * c, y, w).numpy())
        out.append(torch.from_numpy(np.ascontiguousarray(moved.reshape(h, c, y, w))))
    return torch.stack(out)


def init_head(model: torch.nn.Module, *, kaiming: bool, prior: torch.Tensor | None) -> None:
    """He-initialise AxialNet's custom convolutions (zero biases) and/or set its output biases
    to the label priors' logits."""
    if kaiming:
        for module in model.trunk.custom_convs.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.zeros_(module.bias)
    if prior is not None:
        p = prior.clamp(0.01, 0.99)
        with torch.no_grad():
            model.fc.bias.copy_(torch.log(p / (1 - p)))


def build(n_classes: int, shape, *, kaiming: bool, prior: torch.Tensor | None):
    model = ctbench.create_model("axialnet", n_classes, shape)
    init_head(model, kaiming=kaiming, prior=prior)
    return to_channels_last(model)


def scores(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Logits of ``x`` in eval batches of 8."""
    with torch.no_grad():
        return torch.cat([model(x[k : k + 8]) for k in range(0, len(x), 8)]).numpy()


def train(args) -> None:
    torch.manual_seed(args.seed)
    parts = [load_split("train", seed) for seed in args.train_seeds]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    (xv, yv), (xs, ys) = load_split("valid"), load_split("test")
    model = build(y.shape[1], tuple(x.shape[1:]), kaiming=args.kaiming,
                  prior=y.mean(0) if args.prior else None)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-7)
    steps = args.epochs * math.ceil(len(x) / args.batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    began = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        total = 0.0
        for k in range(0, len(x), args.batch):
            index = order[k : k + args.batch]
            batch = x[index]
            if not args.no_augment:
                batch = augmented(batch, np.random.default_rng([args.seed, epoch, k]))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
        model.eval()
        test_median, test_per_label = median_auroc(ys.numpy(), scores(model, xs))
        record = {
            "recipe": args.recipe,
            "epoch": epoch + 1,
            "train_loss": round(total / len(x), 4),
            "valid_median": round(median_auroc(yv.numpy(), scores(model, xv))[0], 3),
            "test_median": round(test_median, 3),
            "test_per_label": test_per_label,
            "seconds": round(time.time() - began),
        }
        print(json.dumps(record), flush=True)


def dead_units(args) -> None:
    """How much of AxialNet's final representation is zero at initialisation, and whether the
    model can fit 16 training volumes (is the optimiser able to move it at all)."""
    torch.manual_seed(args.seed)
    x, y = load_split("train")
    x, y = x[:16], y[:16]
    model = build(y.shape[1], tuple(x.shape[1:]), kaiming=args.kaiming, prior=None)
    captured = {}
    hook = model.trunk.last_layer.register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("z", out.detach())
    )
    model.eval()
    with torch.no_grad():
        model(x[:4])
    hook.remove()
    z = captured["z"]
    alive = int((z.amax(dim=(0, 2, 3)) > 0).sum())
    zero = float((z == 0).float().mean())
    print(f"zero share of z: {zero:.3f}; channels alive: {alive}/{z.shape[1]}")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(60):
        index = torch.randint(0, 16, (4,))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 0 or step == 59:
            print(f"step {step}: loss {float(loss.detach()):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--kaiming", action="store_true")
    parser.add_argument("--prior", action="store_true")
    parser.add_argument("--no-augment", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    (dead_units if args.recipe == "dead-units" else train)(args)


if __name__ == "__main__":
    main()
