"""A run's model and dataset again, for the commands that study a run (sanity, faithfulness)."""

from __future__ import annotations

from pathlib import Path

from ctbench.data.checks import check_dataset_options
from ctbench.experiments.run_config import RunConfig
from ctbench.experiments.run_folder import RunFolder


def trained_run(run_folder: Path, explainers=None, device="cpu"):
    """``(config, explainer names, trained model on device)`` of a finished run folder, for
    the commands that study a run's explanations (sanity, faithfulness); ``explainers``
    defaults to the run's own."""
    from ctbench.runtime.checkpoints import model_from_checkpoint

    run = RunFolder(run_folder)
    checkpoint = run.best_checkpoint
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no trained model (is {run.path} a finished run?)")
    config = RunConfig.from_json(run.read_config()["run"])
    names = list(explainers or config.explainers)
    if not names:
        raise ValueError(f"{run_folder}: the run has no explainer; name one with --explainer")
    return config, names, model_from_checkpoint(checkpoint)[0].to(device).eval()


def dataset_of(config: RunConfig):
    """The dataset a run configuration names, with its options (folder, cues, extras)."""
    import ctbench

    options = dict(config.dataset_options)
    if config.confounders:
        options["confounders"] = True
    if config.data_root is not None:
        options["data_root"] = config.data_root
    check_dataset_options(config.dataset, options)
    return ctbench.create_dataset(config.dataset, preset=config.preset, **options)
