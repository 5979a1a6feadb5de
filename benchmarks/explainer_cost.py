"""What every registered explainer costs for one default-preset volume and the paper's 80
outputs (AxialNet, 16 x 3 x 128 x 128), in forward passes of the same process.

    python -m benchmarks.explainer_cost [--classes 80] [--ig-classes 4]

The CAM explainers take all 80 classes in one call. Input x Gradient takes one backward per
class (all 80 are timed). Integrated Gradients takes ``steps`` forward and backward passes per
class: it is timed on ``--ig-classes`` classes and scaled to 80 (its cost is linear in the
classes, one Captum call each); the output says so.
"""

from __future__ import annotations

import argparse

import ctbench
import torch

from benchmarks.timing import median_seconds

INPUT_SHAPE = (16, 3, 128, 128)


def main(classes: int, ig_classes: int) -> None:
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", classes, INPUT_SHAPE).eval()
    x = torch.rand(1, *INPUT_SHAPE) - 0.449
    with torch.no_grad():
        forward = median_seconds(lambda: model(x), 5)
    print(f"forward pass: {forward * 1000:.0f} ms")
    rows = [("forward (no explanation)", forward, classes)]
    for name in ("hirescam", "gradcam", "gradcampp", "layercam", "input-x-gradient"):
        explainer = ctbench.create_explainer(name)
        rounds = 1 if "-" in name else 3  # the Captum ones take seconds per round
        seconds = median_seconds(lambda e=explainer: e.explain(model, x), rounds)
        rows.append((name, seconds, classes))
    explainer = ctbench.create_explainer("integrated-gradients", steps=20)
    subset = list(range(ig_classes))
    seconds = median_seconds(lambda: explainer.explain(model, x, classes=subset), 1)
    scale = classes / ig_classes
    label = f"integrated-gradients (20 steps; {ig_classes} classes timed, x{scale:g})"
    rows.append((label, seconds * scale, classes))
    print(f"| explainer ({classes} classes, 1 volume) | seconds | forward passes |")
    print("|---|---|---|")
    for name, seconds, _ in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / forward:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--ig-classes", type=int, default=4)
    args = parser.parse_args()
    main(args.classes, args.ig_classes)
