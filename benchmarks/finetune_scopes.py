"""Seconds per epoch of each ``--finetune`` scope on one preset, with the mask loss (issue 30).

Each scope trains only its own stage of AxialNet for a few epochs from the preset's start (the
pretext must exist, or is built first and not counted), with the phantom's confounders and the
paper's mask loss; the script reads each run's epoch records and prints, per scope, the seconds
of the first epoch (which fills the layer4 cache most) and the mean of the later ones, and
writes them as JSON. (A ``--finetune layer4`` run trains the head's epochs first; here layer4
starts from the pretext, which changes nothing in its cost.)

    python -m benchmarks.finetune_scopes [--preset default] [--epochs 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from ctbench.experiments.run_config import RunConfig
from ctbench.experiments.runs import execute_run

SCOPES = {  # scope -> (the run options that train only its own stage for ``epochs``, stage)
    "head": (lambda epochs: {"finetune": "head", "head_epochs": epochs, "epochs": 0}, "head"),
    "layer4": (
        lambda epochs: {"finetune": "layer4", "head_epochs": 0, "layer4_epochs": epochs},
        "layer4",
    ),
    "all": (lambda epochs: {"finetune": "all", "epochs": epochs}, "full"),
}


def measure(preset: str, epochs: int) -> dict:
    rows = {}
    for scope, (options, stage) in SCOPES.items():
        config = RunConfig(
            arch="axialnet",
            explainers=("hirescam",),
            preset=preset,
            confounders=True,
            mask_loss=True,
            overlays=0,
            **options(epochs),
        )
        folder = Path(tempfile.mkdtemp()) / scope
        began = time.perf_counter()
        metrics = execute_run(config, folder, progress=False, log=lambda _: None)
        history = metrics["training"]["history"]
        seconds = [r["seconds"] for r in history if r["stage"] == stage]
        rows[scope] = {
            "first_epoch_s": seconds[0],
            "later_epochs_s": sum(seconds[1:]) / max(len(seconds) - 1, 1),
            "epochs": len(seconds),
            "run_s": time.perf_counter() - began,
            "phases_s": {k: round(v, 1) for k, v in metrics["timing"].items()},
        }
        print(
            f"{scope:7s} first epoch {seconds[0]:7.1f} s, later epochs "
            f"{rows[scope]['later_epochs_s']:7.1f} s, run {rows[scope]['run_s']:.0f} s"
        )
    return {
        "command": f"python -m benchmarks.finetune_scopes --preset {preset} --epochs {epochs}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": date.today().isoformat(),
        "scopes": rows,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="default")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.preset, args.epochs)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
