"""The one preset table of the datasets read from disk (rad-chestct, ct-rate, folder).

Each preset is the geometry cases are resampled to and how a run on it trains (``run``: a recipe
of ``ctbench.experiments.run_config.TRAINING_RECIPES`` and the keys it changes; docs/presets.md).
The paper's 0.8 mm and 405 x 420 x 420 (324 x 336 x 336 mm); the smaller presets keep about
that field of view at coarser spacing, for a CPU.
"""

from __future__ import annotations

from ctbench.core import paper
from ctbench.data.disk_source import Geometry

PRESETS: dict[str, Geometry] = {
    "tiny": Geometry(5.0, (27, 64, 64), {"recipe": "cpu-tiny", "downsampler": "area"}),
    # nearest keeps ~4% of an organ's cells on a 4x4 grid, and none on a 2x2 one: area
    "default": Geometry(2.4, (135, 140, 140), {"recipe": "cpu", "downsampler": "area"}),
    "paper": Geometry(paper.SPACING_MM, paper.VOLUME_SHAPE, {"recipe": "paper"}),
}


def preset_runs() -> dict[str, dict]:
    """``presets=`` of a disk dataset's registration: each preset's run defaults."""
    return {name: dict(geometry.run) for name, geometry in PRESETS.items()}
