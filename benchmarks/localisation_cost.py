"""What the localisation family costs: every metric
(``ctbench.evaluate.explanation_scores.pair_scores``: the threshold-free family, then IoU, Dice
and the hit at tuned and Otsu thresholds) for the 80 labels of one default-preset volume, on the
CAM grid (16 x 4 x 4) and on the CT grid (48 x 128 x 128), medians of 5 rounds in one process,
against one forward pass of AxialNet.

    python -m benchmarks.localisation_cost
"""

from __future__ import annotations

import ctbench
import numpy as np
import torch
from ctbench.evaluate.explanation_scores import pair_scores

from benchmarks.timing import median_seconds


def main() -> None:
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 80, (16, 3, 128, 128)).eval()
    x = torch.rand(1, 16, 3, 128, 128) - 0.449
    with torch.no_grad():
        forward = median_seconds(lambda: model(x))
    rng = np.random.default_rng(0)
    print(f"one forward pass: {forward * 1000:.0f} ms")
    for name, grid in (("CAM grid", (16, 4, 4)), ("CT grid", (48, 128, 128))):
        maps = rng.random((1, 80, *grid), dtype=np.float32)
        masks = rng.random((1, 80, *grid)) < 0.1
        cut = np.full(80, 0.5)
        seconds = median_seconds(lambda m=maps, k=masks, t=cut: pair_scores(m, k, t))
        print(
            f"{name} {grid}: all metrics for 80 labels of one volume {seconds * 1000:.0f} ms "
            f"({seconds / forward:.2f} forward passes)"
        )


if __name__ == "__main__":
    main()
