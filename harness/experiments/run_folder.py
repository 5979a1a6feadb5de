"""The run folder, ctbench's product: where each file lives, when a run is finished, reading it.

One owner for the layout (docs/run-folder.md), so that every reader (tables, the report, matrix
status, comparison, tracking, the studies of a finished run) and every writer spells a file's
name once, here::

    RUN/
      config.json          the resolved options and everything else that shaped the results
      metrics.json         written last: its presence marks the run finished
      predictions.csv      logits and probabilities per split, case and label (validation,
                           test, and with confounders the iid and balanced test splits),
                           and the test split's OrganIoU per case and label
      per_label.csv        AUROC with intervals, OrganIoU per explainer, per label
      timing.json          seconds per phase
      slice_scores.npz     per-slice scores of the test split (MIL models)
      checkpoints/         best.pt, last.pt (ctbench checkpoints, weights_only)
      figures/             loss curves, overlays, per-slice score plots
      sanity.json, sanity.png, faithfulness/   written later by ctbench sanity / faithfulness

``metrics.json`` carries ``schema_version`` (:data:`SCHEMA_VERSION`); ``docs/schemas/`` holds the
JSON Schemas of ``metrics.json`` and ``config.json``, validated against a real run in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
"""The version of metrics.json's layout; a run folder from before versions had none (0).
Version 2 dropped the ``localisation`` blocks that repeated ``explanation_metrics``."""

CONFIG = "config.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
PER_LABEL = "per_label.csv"
TIMING = "timing.json"
SLICE_SCORES = "slice_scores.npz"
CHECKPOINTS = "checkpoints"
FIGURES = "figures"
SANITY = "sanity.json"
FAITHFULNESS = "faithfulness"


@dataclass(frozen=True)
class RunFolder:
    """One run folder: its files' paths, its state, and its records read safely."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # --- where each file lives -------------------------------------------------------------

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def predictions(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def per_label(self) -> Path:
        return self.path / PER_LABEL

    @property
    def timing(self) -> Path:
        return self.path / TIMING

    @property
    def slice_scores(self) -> Path:
        return self.path / SLICE_SCORES

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def best_checkpoint(self) -> Path:
        from ctbench.train.training import BEST

        return self.checkpoints / BEST

    @property
    def figures(self) -> Path:
        return self.path / FIGURES

    @property
    def sanity(self) -> Path:
        return self.path / SANITY

    @property
    def faithfulness(self) -> Path:
        return self.path / FAITHFULNESS

    # --- state ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """``metrics.json``, written last, is there."""
        return self.metrics.is_file()

    def state(self) -> str:
        """``finished``, ``unfinished`` (anything else is there) or ``new`` (no folder, or
        one that holds nothing but a lock file)."""
        if self.finished:
            return "finished"
        return "unfinished" if self.path.is_dir() and self.contents() else "new"

    def contents(self) -> list[Path]:
        """What the folder holds, less its lock file."""
        from ctbench.runtime.locks import is_lock_file

        return [path for path in self.path.iterdir() if not is_lock_file(path)]

    # --- records -------------------------------------------------------------------------

    def read_config(self) -> dict[str, Any]:
        """``config.json``, checked to hold the run options (``run``)."""
        from ctbench.runtime.storage import read_json

        record = read_json(self.config)
        if not isinstance(record, dict) or not isinstance(record.get("run"), dict):
            raise ValueError(f"{self.config}: not a ctbench run configuration (no 'run' options)")
        return record

    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json``, checked to be of a layout this ctbench reads."""
        from ctbench.runtime.storage import read_json

        metrics = read_json(self.metrics)
        if not isinstance(metrics, dict):
            raise ValueError(f"{self.metrics}: not a ctbench metrics record")
        version = metrics.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(
                f"{self.metrics}: schema_version {version!r} is newer than this ctbench reads "
                f"({SCHEMA_VERSION}); upgrade ctbench"
            )
        return metrics


def finished_runs(folder: Path) -> list[Path]:
    """The finished runs of ``folder``: a matrix's cells (its matrix*.json) that finished, else
    every sub-folder that is a finished run, else ``folder`` itself when it is one."""
    from ctbench.experiments.matrix import find_states

    folder = Path(folder)
    states = find_states(folder)
    if states:
        found = [RunFolder(folder / cell["folder"]) for state in states for cell in state["cells"]]
        return [run.path for run in found if run.finished]
    if RunFolder(folder).finished:
        return [folder]
    return sorted(p.parent for p in folder.glob(f"*/{METRICS}"))


HEADLINE_LOCALISATION = ("pointing_game", "iou_ct")
"""The localisation numbers a run's summary, report and tracking show, on lesion truth."""


def localisation_means(
    metrics: dict[str, Any], metric_names: tuple[str, ...] = HEADLINE_LOCALISATION
) -> dict[str, dict[str, float | None]]:
    """``{explainer: {metric: mean}}`` on lesion truth from ``metrics.json``'s
    ``explanation_metrics`` for the run's explainers (its config's; the reference maps scored
    beside them are left out), empty for a run without lesion masks."""
    block = (metrics.get("explanation_metrics") or {}).get("lesion") or {}
    explainers = ((metrics.get("config") or {}).get("run") or {}).get("explainers") or ()
    return {
        name: {metric: (block[name].get(metric) or {}).get("mean") for metric in metric_names}
        for name in explainers
        if name in block
    }
