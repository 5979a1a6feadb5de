"""Experiment tracking where researchers already look: a finished run folder -> MLflow.

``ctbench run|matrix --track mlflow`` logs each finished run from its folder (so a run is
logged the same whether it ran alone, in a matrix or on Slurm): parameters (the resolved run
options), metrics per epoch (step = epoch, head warm-up epochs first), the final metrics and the
folder's tables and figures as artifacts. The tracking URI is ``MLFLOW_TRACKING_URI`` when set;
otherwise a local store in ``./mlruns`` (an SQLite file and the artifacts beside it), which
needs no server. MLflow 3 refuses its old plain-file store by default, so the default is
MLflow's own recommended local database instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ctbench.experiments.run_folder import RunFolder, localisation_means

TRACKERS = ("mlflow",)


def default_tracking_uri(root: Path | None = None) -> tuple[str, Path]:
    """``(uri, artifact folder)`` of the local store under ``root`` (default ``./mlruns``)."""
    root = Path(root or "mlruns").resolve()
    return f"sqlite:///{root / 'mlflow.db'}", root


def track_run(folder: str | Path, tracker: str = "mlflow", experiment: str = "ctbench") -> str:
    """Log the finished run in ``folder``; returns the MLflow run id."""
    if tracker not in TRACKERS:
        raise ValueError(f"unknown tracker {tracker!r}; trackers: {', '.join(TRACKERS)}")
    try:
        import mlflow
    except ImportError as error:
        raise RuntimeError("--track mlflow needs MLflow: pip install 'ctbench[mlflow]'") from error
    folder = Path(folder)
    run_folder = RunFolder(folder)
    metrics, config = run_folder.read_metrics(), run_folder.read_config()
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    artifacts = None
    if not uri:
        uri, artifacts = default_tracking_uri()
        artifacts.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found
        else client.create_experiment(
            experiment, artifact_location=None if artifacts is None else artifacts.as_uri()
        )
    )
    run = client.create_run(
        experiment_id, run_name=folder.name, tags={"ctbench.folder": str(folder.resolve())}
    )
    run_id = run.info.run_id
    try:
        for key, value in run_params(config).items():
            client.log_param(run_id, key, value)
        for step, record in enumerate(metrics.get("training", {}).get("history", [])):
            for key, value in record.items():
                if key != "epoch" and isinstance(value, int | float) and value == value:
                    client.log_metric(run_id, f"epoch/{key}", float(value), step=step)
        for key, value in final_metrics(metrics).items():
            client.log_metric(run_id, key, value)
        files = (run_folder.config, run_folder.metrics, run_folder.per_label, run_folder.timing)
        for path in files:
            if path.is_file():
                client.log_artifact(run_id, str(path))
        if run_folder.figures.is_dir():
            client.log_artifacts(run_id, str(run_folder.figures), "figures")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def run_params(config: dict[str, Any]) -> dict[str, str]:
    """The resolved run options and the software versions, as MLflow's string parameters."""
    params = {
        f"run.{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in config["run"].items()
    }
    for key in ("ctbench_version", "torch_version", "python_version"):
        if key in config:
            params[key] = str(config[key])
    return {k: v[:500] for k, v in params.items()}


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Headline numbers: AUROC median/IQR, per-label AUROC, OrganIoU and localisation per
    explainer, timing per phase (None and NaN left out)."""
    out: dict[str, Any] = {
        "auroc_median": metrics.get("auroc_median"),
        "auroc_iqr": metrics.get("auroc_iqr"),
        "valid_auroc_median": metrics.get("valid_auroc_median"),
    }
    out |= {f"auroc/{k}": v for k, v in (metrics.get("auroc") or {}).items()}
    out |= {f"organiou/{k}": v for k, v in (metrics.get("organiou") or {}).items()}
    for name, values in localisation_means(metrics).items():
        out |= {f"{key}/{name}": v for key, v in values.items()}
    out |= {f"seconds/{k}": v for k, v in (metrics.get("timing") or {}).items()}
    return {k: float(v) for k, v in out.items() if isinstance(v, int | float) and v == v}
