"""``ctbench run``: one resolved configuration -> one run folder (README: Running experiments).

Phases, each timed: data (generate or find the dataset), partition (load every case once and
build its allowed regions when an explainer or the mask loss needs them), train (resumable, see
``ctbench.training``), evaluate (validation and test: predictions, explanations, OrganIoU,
localisation), score and figures; then the tables and ``metrics.json`` are written.
The folder holds ``config.json``, ``metrics.json``, ``predictions.csv``, ``per_label.csv``,
``timing.json``, ``checkpoints/{best,last}.pt`` and ``figures/``. ``metrics.json`` is written
last: its presence marks a finished run, which is not overwritten unless asked. Cases that fail
to load are skipped and listed, never fatal.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ctbench.losses import DEFAULT_LAMBDA

RUN_PRESETS: dict[str, dict[str, Any]] = {
    # Training defaults per data preset; every one can be overridden on the command line.
    # ``start``: where ResNet-18 starts (see STARTS). With a pretrained start the phantom
    # presets train the head on the frozen backbone's cached output (``head_epochs``, see
    # ctbench.warmup) and run no full epoch; from random weights they train ``scratch_epochs``
    # full epochs, as before the pretext existed (docs/learning-investigation.md).
    "tiny": {
        "start": "pretext",
        "pretext_epochs": 2,
        "head_epochs": 20,
        "epochs": 0,
        "scratch_epochs": 3,
        "batch_size": 4,
        "optimizer": "adam",
        "schedule": "cosine",
        "downsampler": "area",  # nearest samples row/column 0 and 32 of a 2x2 grid: no lungs
    },
    "default": {
        "start": "pretext",
        "pretext_epochs": 10,
        "head_epochs": 60,
        "epochs": 0,
        "scratch_epochs": 3,
        "batch_size": 4,
        "optimizer": "adam",
        "schedule": "cosine",
        "downsampler": "area",  # nearest keeps ~4% of an organ's cells on a 4x4 grid
    },
    "paper": {
        "start": "imagenet",
        "pretext_epochs": 10,
        "head_epochs": 0,
        "epochs": 100,
        "scratch_epochs": 100,
        "batch_size": 1,
        "optimizer": "sgd",
        "schedule": "constant",
        "downsampler": "nearest",
    },
}
"""Training defaults by preset. The phantom presets start from the phantom pretext
(``ctbench pretrain``) and run offline on a CPU; the paper preset trains as the paper (SGD,
batch 1, up to 100 epochs, ImageNet start)."""

STARTS = {
    "pretext": "ResNet-18 from the dataset's own pretext (ctbench pretrain), built once and cached",
    "imagenet": "ResNet-18 from ImageNet weights (local file or torch hub cache; never downloaded)",
    "random": "every weight random (PyTorch's default initialisation)",
    "weights": "ResNet-18 from the file given by --weights",
}
"""Where a run's ResNet-18 starts; config.json's ``run.start`` is one of these."""


def chosen_start(start: str | None, pretrained: bool | None, has_weights: bool) -> str | None:
    """The start the options name: a weights file, else ``start``, else ``pretrained``
    (imagenet / random); None when they name none (the caller's default applies)."""
    if has_weights:
        return "weights"
    if start is None and pretrained is not None:
        return "imagenet" if pretrained else "random"
    return start


DEFAULT_LR = 1e-3
"""The paper's learning rate; the phantom presets use it with Adam too."""


class RunExistsError(RuntimeError):
    """The run folder holds a finished or unfinished run that was not meant to be reused."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's results; saved as ``config.json``."""

    arch: str
    explainers: tuple[str, ...]
    dataset: str
    preset: str
    segmenter: str
    mask_explainer: str
    confounders: bool = False
    mask_loss: bool = False
    mask_lambda: float = DEFAULT_LAMBDA
    downsampler: str | None = None
    dilate: bool = False
    seed: int = 0
    start: str | None = None
    head_epochs: int | None = None
    epochs: int | None = None
    patience: int = 15
    optimizer: str | None = None
    schedule: str | None = None
    lr: float | None = None
    batch_size: int | None = None
    workers: int = 0
    channels_last: bool = True
    pretrained: bool | None = None
    weights: str | None = None
    overlays: int = 4
    dataset_options: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> RunConfig:
        """Fill every ``None`` from the preset's defaults (unknown presets use ``paper``).

        The start: ``weights`` -> "weights"; else ``start``; else ``pretrained`` True/False ->
        "imagenet"/"random"; else the preset's, or "random" for a model that never loads
        pretrained weights (``axialnet-randinit``, ``3dconv``). From a random start the preset's
        ``scratch_epochs`` full epochs and no head warm-up are the defaults.
        """
        defaults = RUN_PRESETS.get(self.preset, RUN_PRESETS["paper"])
        start = chosen_start(self.start, self.pretrained, bool(self.weights))
        if start is None:
            from ctbench.registry import default_registry

            meta = default_registry().get("architectures", self.arch).meta
            start = defaults["start"] if meta.get("pretrainable", True) else "random"
        if start not in STARTS:
            raise ValueError(f"unknown start {start!r}; choose {', '.join(STARTS)}")
        scratch = start == "random"
        filled = {
            key: defaults[key] if getattr(self, key) is None else getattr(self, key)
            for key in ("batch_size", "optimizer", "schedule", "downsampler")
        }
        epochs = self.epochs
        if epochs is None:
            epochs = defaults["scratch_epochs" if scratch else "epochs"]
        head_epochs = self.head_epochs
        if head_epochs is None:
            head_epochs = 0 if scratch else defaults["head_epochs"]
        return replace(
            self,
            **filled,
            start=start,
            epochs=epochs,
            head_epochs=head_epochs,
            lr=DEFAULT_LR if self.lr is None else self.lr,
            pretrained=start != "random",
        )

    def folder_name(self) -> str:
        """A readable name that differs whenever an option that changes results differs."""
        parts = [self.arch, "+".join(self.explainers) or "noexplainer"]
        if self.mask_loss:
            parts.append(f"mask{self.mask_lambda:.3g}")
        parts += [self.dataset, self.preset]
        if self.confounders:
            parts.append("confounders")
        parts.append(f"seed{self.seed}")
        from ctbench.storage import config_key

        return "-".join(parts) + "-" + config_key(self.to_json())[:6]

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


class Timer:
    """Seconds per named phase, accumulated; each finished phase is one line of ``log`` (so a
    log file or CI reads one line per phase, not progress-bar redraws)."""

    def __init__(self, log=None) -> None:
        self.seconds: dict[str, float] = {}
        self.log = log or (lambda _message: None)

    @contextmanager
    def phase(self, name: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - began
            self.seconds[name] = self.seconds.get(name, 0.0) + took
        self.log(f"{name}: done in {took:.1f} s")


def prepare_folder(folder: Path, config: RunConfig, *, resume: bool, overwrite: bool) -> None:
    """Create the run folder, or reuse it under the rules: finished runs are never overwritten
    silently, unfinished ones continue only with ``resume`` and the same configuration."""
    if folder.exists() and any(folder.iterdir()):
        if overwrite:
            shutil.rmtree(folder)
        elif (folder / "metrics.json").exists():
            raise RunExistsError(
                f"{folder}: a finished run is already here; pass --overwrite to replace it"
            )
        elif not resume:
            raise RunExistsError(
                f"{folder}: an unfinished run is here; pass --resume to continue it "
                "or --overwrite to start again"
            )
        else:
            saved = json.loads((folder / "config.json").read_text())["run"]
            if saved != config.to_json():
                changed = sorted(k for k in saved if saved[k] != config.to_json().get(k))
                raise RunExistsError(
                    f"{folder}: --resume with a different configuration ({', '.join(changed)})"
                )
    folder.mkdir(parents=True, exist_ok=True)


def config_record(config: RunConfig, extra: dict[str, Any]) -> dict[str, Any]:
    """``config.json``: the resolved run options plus what else shaped the results."""
    import ctbench
    import torch

    return {
        "ctbench_version": ctbench.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "seed": config.seed,
        "run": config.to_json(),
        **extra,
    }


def execute_run(
    config: RunConfig,
    folder: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    log=print,
) -> dict[str, Any]:
    """Train, evaluate, explain and write one run folder; returns ``metrics.json``'s content."""
    import ctbench
    import torch
    from ctbench.cases import SPLITS
    from ctbench.data import VolumeDataset
    from ctbench.evaluation import predict_and_explain, score_run
    from ctbench.preprocess import Preprocessing
    from ctbench.registry import default_registry
    from ctbench.results import write_figures, write_results
    from ctbench.storage import write_json
    from ctbench.training import Trainer, TrainSettings

    config = config.resolved()
    folder = Path(folder)
    prepare_folder(folder, config, resume=resume, overwrite=overwrite)
    timer = Timer(log)
    began = time.perf_counter()

    with timer.phase("data"):
        options = dict(config.dataset_options)
        if config.confounders:
            options["confounders"] = True
        source = ctbench.create_dataset(config.dataset, preset=config.preset, **options)
        labels = list(source.label_names)
        preprocessing = Preprocessing(volume_shape=tuple(source.volume_shape))
        input_shape = preprocessing.input_shape

    model_options = {"pretrained": config.pretrained, "weights": config.weights}
    pretext = None
    if config.start == "pretext":
        model_options["weights"], pretext = pretext_start(config, source, timer, progress, log)
    torch.manual_seed(config.seed)  # the model first: a missing weights file fails in seconds
    model = ctbench.create_model(config.arch, len(labels), input_shape, **model_options)
    with timer.phase("data"):
        if hasattr(source, "materialise"):
            source.materialise(progress=progress)
    if config.channels_last:  # about 12% faster on CPU (oneDNN); same numbers within rounding
        from ctbench.memory_format import to_channels_last

        model = to_channels_last(model)
    explainable = bool(getattr(model, "explainable", False))
    if config.mask_loss and not explainable:
        raise ValueError(f"{config.arch} is not explainable, so it cannot train with the mask loss")
    # a max-aggregated model's mask attention is each slice's own W Z (losses.mask_attention),
    # HiResCAM per slice: an explainer that is not faithful to the model cannot stand for it
    if (
        config.mask_loss
        and getattr(model, "slice_aggregation", None) == "max"
        and not default_registry().get("explainers", config.mask_explainer).meta.get("faithful")
    ):
        raise ValueError(
            f"{config.arch} takes the max over slices: its mask loss uses each slice's own "
            f"W Z (HiResCAM per slice), so --mask-explainer {config.mask_explainer} "
            "(not faithful to the model) cannot define it; use a faithful explainer"
        )
    explainers = {name: ctbench.create_explainer(name) for name in config.explainers}
    if explainers and not explainable:
        log(f"{config.arch} is not explainable: no explanations, OrganIoU or localisation")
        explainers = {}
    record = config_record(
        config,
        {
            "model_options": model_options,
            "start": {"name": config.start, "means": STARTS[config.start], "pretext": pretext},
            "input_shape": list(input_shape),
            "labels": labels,
            "dataset_config": dataset_config(source),
            "explainable": explainable,
        },
    )
    write_json(folder / "config.json", record)

    regions = None
    if explainers or config.mask_loss:
        from ctbench.partition import AllowedRegions

        map_shape = (input_shape[0], *tuple(model.representation_shape)[1:])
        cache = Path(getattr(source, "folder", folder)) / "partition"
        regions = AllowedRegions(
            labels,
            map_shape,
            preprocessing,
            segmenter=config.segmenter,
            downsampler=config.downsampler,
            dilate=config.dilate,
            cache_dir=cache,
        )
    has_lesions = bool(default_registry().get("datasets", config.dataset).meta.get("finding_masks"))

    def split(name: str, train: bool) -> VolumeDataset:
        needs_regions = regions is not None and (not train or config.mask_loss)
        return VolumeDataset(
            source,
            name,
            preprocessing=preprocessing,
            augment=train,
            seed=config.seed,
            with_findings=has_lesions and not train,
            allowed_regions=regions if needs_regions else None,
        )

    datasets = {name: split(name, name == "train") for name in SPLITS}
    with timer.phase("partition"):
        skipped = check_cases(datasets, progress)
    for case in skipped:
        log(f"skipped {case['split']} case {case['case_id']}: {case['error']}")

    settings = TrainSettings(
        optimizer=config.optimizer,
        lr=config.lr,
        schedule=config.schedule,
        epochs=config.epochs,
        patience=config.patience,
        batch_size=config.batch_size,
        mask_loss=config.mask_loss,
        mask_lambda=config.mask_lambda,
        seed=config.seed,
        workers=config.workers,
        head_epochs=config.head_epochs,
    )
    trainer = Trainer(
        model,
        settings,
        datasets["train"],
        datasets["valid"],
        folder / "checkpoints",
        checkpoint_info={
            "arch": config.arch,
            "input_shape": input_shape,
            "label_names": labels,
            "model_options": model_options,
        },
        explain_for_loss=lambda graph: ctbench.create_explainer(
            config.mask_explainer, create_graph=graph
        ),
        progress=progress,
        log=log,
    )
    with timer.phase("train"):
        history = trainer.fit(resume=resume)
    from ctbench.checkpoints import load_checkpoint

    model.load_state_dict(load_checkpoint(trainer.best_path)["state_dict"])
    evaluated = {}
    for name in ("valid", "test"):
        with timer.phase(f"evaluate_{name}"):
            evaluated[name] = predict_and_explain(
                model,
                datasets[name],
                explainers,
                batch_size=config.batch_size,
                progress=progress,
            )
    with timer.phase("score"):
        metrics, table = score_run(evaluated["valid"], evaluated["test"], labels)
    with timer.phase("figures"):
        write_figures(
            folder / "figures", history, evaluated["test"], datasets["test"], labels, config
        )
    timer.seconds["total"] = time.perf_counter() - began
    metrics.update(
        {
            "timing": timer.seconds,
            "training": {
                "best_epoch": trainer.best_epoch,
                "head_epochs_run": sum(r.get("stage") == "head" for r in history),
                "epochs_run": sum(r.get("stage") != "head" for r in history),
                "stopped_early": trainer.bad_epochs >= config.patience,
                "history": history,
            },
            "skipped_cases": skipped,
            "config": record,
        }
    )
    write_results(folder, metrics, table, evaluated, labels)
    return metrics


def preset_pretext(
    source,
    preset: str,
    *,
    cache_dir=None,
    rebuild: bool = False,
    progress=None,
    log=None,
    **overrides,
) -> Path:
    """The pretext weights runs of ``preset`` start from (its ``pretext_epochs``; ``overrides``
    change other settings), for ``source``'s geometry: built first when missing."""
    from ctbench.preprocess import Preprocessing
    from ctbench.pretraining import PretextSettings, pretext_weights

    epochs = RUN_PRESETS.get(preset, RUN_PRESETS["paper"])["pretext_epochs"]
    return pretext_weights(
        source,
        Preprocessing(volume_shape=tuple(source.volume_shape)),
        PretextSettings(**{"epochs": epochs, **overrides}),
        cache_dir=cache_dir,
        rebuild=rebuild,
        progress=progress,
        log=log,
    )


def pretext_start(config: RunConfig, source, timer: Timer, progress, log):
    """``(weights path, its build record)`` of the dataset's pretext start, built once.

    A model that never loads weights is refused before the build, not after it.
    """
    from ctbench.registry import default_registry

    if not default_registry().get("architectures", config.arch).meta.get("pretrainable", True):
        raise ValueError(f"{config.arch} never loads pretrained weights; use --start random")
    with timer.phase("pretext"):
        path = preset_pretext(source, config.preset, progress=progress, log=log)
    record = json.loads(path.with_suffix(".json").read_text())
    return str(path), {"path": str(path), **record}


def dataset_config(source) -> dict[str, Any]:
    """The dataset's own configuration when it has one (the phantom's generator settings)."""
    config = getattr(source, "config", None)
    return config.to_json() if hasattr(config, "to_json") else {}


def check_cases(datasets: dict, progress: bool | None) -> list[dict[str, str]]:
    """Load every case once (and build its allowed regions when needed); skip and list the
    cases that fail, so that a bad file never stops a long run."""
    from ctbench.cases import InvalidCaseError
    from ctbench.progress import progress_bar

    skipped = []
    for name, dataset in datasets.items():
        keep = []
        for index, case_id in enumerate(
            progress_bar(dataset.case_ids, enabled=progress, desc=f"check {name}", unit="case")
        ):
            try:
                case = dataset.load_case(index)
                if dataset.allowed_regions is not None:
                    dataset.allowed_regions(case)
                keep.append(case_id)
            except (InvalidCaseError, OSError, ValueError) as error:
                skipped.append({"split": name, "case_id": case_id, "error": str(error)})
        dataset.case_ids = keep
    return skipped
