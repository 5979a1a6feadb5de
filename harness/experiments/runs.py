"""``ctbench run``: one resolved configuration -> one run folder (docs/running.md).

Phases, each timed: data (generate or find the dataset), partition (load every case once and
build its allowed regions when an explainer or the mask loss needs them), train (resumable, see
``ctbench.train.training``), evaluate (validation and test: predictions, explanations, OrganIoU,
localisation), score and figures; then the tables and ``metrics.json`` are written.
The folder holds ``config.json``, ``metrics.json``, ``predictions.csv``, ``per_label.csv``,
``timing.json``, ``checkpoints/{best,last}.pt`` and ``figures/``. ``metrics.json`` is written
last: its presence marks a finished run, which is not overwritten unless asked. Cases that fail
to load are skipped and listed, never fatal.
"""

from __future__ import annotations

import platform
import shutil
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from ctbench.data.checks import check_cases, check_splits
from ctbench.experiments.run_config import STARTS, RunConfig, preset_defaults
from ctbench.experiments.run_folder import RunFolder


class RunExistsError(RuntimeError):
    """The run folder holds a finished or unfinished run that was not meant to be reused."""


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
    silently, unfinished ones continue only with ``resume`` and the same configuration. The
    caller holds the folder's lock (``--overwrite`` empties the folder but keeps the lock)."""
    state = RunFolder(folder).state()
    if state != "new":
        if overwrite:
            for path in RunFolder(folder).contents():
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        elif state == "finished":
            raise RunExistsError(
                f"{folder}: a finished run is already here; pass --overwrite to replace it"
            )
        elif not resume:
            raise RunExistsError(
                f"{folder}: an unfinished run is here; pass --resume to continue it "
                "or --overwrite to start again"
            )
        else:
            saved = _saved_options(folder)
            if saved != config.to_json():
                changed = sorted(k for k in saved if saved[k] != config.to_json().get(k))
                raise RunExistsError(
                    f"{folder}: --resume with a different configuration ({', '.join(changed)})"
                )
    folder.mkdir(parents=True, exist_ok=True)


def _saved_options(folder: Path) -> dict[str, Any]:
    """The run options an unfinished run recorded; none recorded (it was killed before its
    config.json) is one clear error rather than a KeyError."""
    run = RunFolder(folder)
    if not run.config.is_file():
        raise RunExistsError(
            f"{folder}: an unfinished run that recorded no config.json (killed in its first "
            "seconds); pass --overwrite to start again"
        )
    try:
        return run.read_config()["run"]
    except ValueError as error:
        raise RunExistsError(f"{error}; pass --overwrite") from error


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
    wrap_source=None,
) -> dict[str, Any]:
    """Train, evaluate, explain and write one run folder; returns ``metrics.json``'s content.

    ``wrap_source(source) -> source`` changes the dataset the run sees (``ctbench sanity``
    trains its permuted-label model through it)."""
    from ctbench.experiments.results import write_results
    from ctbench.runtime.devices import Precision, resolve_device
    from ctbench.runtime.distributed import initialise
    from ctbench.runtime.resources import PeakMemory, machine_description

    if not config.is_resolved:  # the API's convenience; ctbench run and matrices resolve first
        config = config.resolved()
    folder = Path(folder)
    device = resolve_device(config.device)
    precision = Precision.resolve(config.precision, device)
    job = initialise(device)  # torchrun's process group, when there is one
    if not job.is_main:  # one voice and one writer: rank 0
        progress, log = False, lambda _message: None
    fresh = RunFolder(folder).state() == "new"
    with removed_if_left_empty(folder, fresh and job.is_main), run_lock(folder, job, log):
        if job.is_main:
            prepare_folder(folder, config, resume=resume, overwrite=overwrite)
        job.barrier()
        timer = Timer(log)
        began = time.perf_counter()
        with PeakMemory(device=device) as memory:
            run = RunParts(config, folder, timer, progress, log, wrap_source)
            run.place(device, precision, job)
            run.load_dataset()
            run.build_model()
            run.choose_explainers()
            run.write_config(machine_description())
            run.make_splits()
            skipped = run.check_cases()
            history = run.train(resume)
            evaluated = run.evaluate()
            if not job.is_main:  # rank 0 scores and writes what every rank computed
                job.barrier()
                return {}
            metrics, table = run.score(evaluated)
            run.write_figures(history, evaluated["test"])
        timer.seconds["total"] = time.perf_counter() - began
        metrics |= run.summary(history, evaluated, skipped, memory.record())
        write_results(folder, metrics, table, {**evaluated, **run.shifted}, run.labels)
        job.barrier()
        return metrics


@contextmanager
def removed_if_left_empty(folder: Path, fresh: bool):
    """A run that fails before writing anything (an unknown preset, a missing weights file)
    leaves no empty folder behind for a later run to trip on; a started one stays resumable."""
    try:
        yield
    except BaseException:
        if fresh and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


@contextmanager
def run_lock(folder: Path, job, log):
    """Rank 0 holds the run folder's lock (``ctbench.runtime.locks``) for the whole run, so a second
    ``ctbench run`` or ``--resume`` of the same folder is refused, naming the holder; the
    temporaries a killed run left behind are removed once the lock is held."""
    from ctbench.runtime.locks import folder_lock
    from ctbench.runtime.storage import remove_orphans

    if not job.is_main:
        yield
        return
    with folder_lock(folder, what="run folder", log=log):
        removed = remove_orphans(folder, every=True, recursive=True)
        if removed:
            log(f"removed {len(removed)} temporary file(s) a killed run left behind")
        yield


class RunParts:
    """The phases of :func:`execute_run`, in order, and what each hands to the next."""

    def __init__(
        self, config: RunConfig, folder: Path, timer: Timer, progress, log, wrap_source=None
    ) -> None:
        self.config, self.folder, self.timer = config, folder, timer
        self.files = RunFolder(folder)  # where each of the run's files goes
        self.recipe = config.recipe()
        self.progress, self.log = progress, log
        self.wrap_source = wrap_source

    def place(self, device, precision, job) -> None:
        """Where the run computes (``ctbench.runtime.devices``) and its torchrun job, if any."""
        from ctbench.runtime.devices import default_workers

        self.device, self.precision, self.job = device, precision, job
        workers = self.config.workers
        self.workers = default_workers(device, job.local_world_size) if workers is None else workers
        if self.config.batch_size < job.world_size:
            raise ValueError(
                f"--batch-size {self.config.batch_size} is the global batch: it must be at "
                f"least the number of processes ({job.world_size})"
            )

    def load_dataset(self) -> None:
        """The dataset's source, labels and model input shape (nothing generated yet)."""
        from ctbench.data.preprocess import Preprocessing

        self.log(f"recipe: {self.recipe['name']} ({self.recipe['why']})")

        with self.timer.phase("data"):
            from ctbench.experiments.finished_run import dataset_of

            self.source = dataset_of(self.config)
            if self.config.oracle == "input-mask":
                from ctbench.train.oracles import InputMaskedSource

                self.source = InputMaskedSource(self.source, self.config.segmenter)
            if self.wrap_source is not None:
                self.source = self.wrap_source(self.source)
            self.labels = list(self.source.label_names)
            self.preprocessing = Preprocessing(volume_shape=tuple(self.source.volume_shape))
            self.input_shape = self.preprocessing.input_shape

    def build_model(self) -> None:
        """The model from its start (the pretext built first when missing), then the data: a
        missing weights file fails in seconds, before the dataset is generated."""
        import ctbench
        import torch
        from ctbench.experiments.run_config import capabilities

        config = self.config
        # only a model that declares pretrainable=True is handed the weight options
        pretrainable = capabilities(config.arch)["pretrainable"]
        self.model_options = (
            {"pretrained": config.pretrained, "weights": config.weights} if pretrainable else {}
        )
        self.pretext = None
        if config.start == "pretext":
            if config.mask_loss:  # what the mask loss needs of the model, before the pretext
                probe = ctbench.create_model(config.arch, len(self.labels), self.input_shape)
                self.check_mask_loss(probe)
            self.model_options["weights"], self.pretext = pretext_start(
                config, self.source, self.timer, self.progress, self.log, self.job, self.device
            )
        torch.manual_seed(config.seed)
        model = ctbench.create_model(
            config.arch, len(self.labels), self.input_shape, **self.model_options
        )
        with self.timer.phase("data"):
            if hasattr(self.source, "materialise"):
                self.job.main_first(lambda: self.source.materialise(progress=self.progress))
        if config.channels_last:  # about 12% faster on CPU (oneDNN); same numbers within rounding
            from ctbench.runtime.memory_format import to_channels_last

            model = to_channels_last(model)
        model = model.to(self.device)
        if config.compile:
            from ctbench.runtime.devices import compile_model

            model = compile_model(model)
        self.model = model

    def check_mask_loss(self, model) -> None:
        """What ``--mask-loss`` needs of the model: explainable, and, when it takes the max
        over slices, a faithful ``--mask-explainer`` (its mask attention is each slice's own
        ``W Z``, HiResCAM per slice: an explainer not faithful to the model cannot stand for
        it)."""
        from ctbench.core.contracts import declared_of

        config = self.config
        if not getattr(model, "explainable", False):
            raise ValueError(
                f"{config.arch} is not explainable, so it cannot train with the mask loss"
            )
        faithful = declared_of("explainers", config.mask_explainer)["faithful"]
        if getattr(model, "slice_aggregation", None) == "max" and not faithful:
            raise ValueError(
                f"{config.arch} takes the max over slices: its mask loss uses each slice's own "
                f"W Z (HiResCAM per slice), so --mask-explainer {config.mask_explainer} "
                "(not faithful to the model) cannot define it; use a faithful explainer"
            )

    def choose_explainers(self) -> None:
        """The explainers to score, after the checks that the mask loss can train this model."""
        import ctbench

        config, model = self.config, self.model
        self.explainable = bool(getattr(model, "explainable", False))
        if config.mask_loss:
            self.check_mask_loss(model)
        self.oracle_explainer = None
        if config.oracle != "none":
            from ctbench.core.contracts import declared_of
            from ctbench.train.oracles import check_oracle

            declared = declared_of("explainers", config.mask_explainer)
            check_oracle(
                config.oracle, config.arch, model, {"name": config.mask_explainer, **declared}
            )
            if config.oracle == "organ-head":
                self.oracle_explainer = ctbench.create_explainer(config.mask_explainer)
        self.explainers = {name: ctbench.create_explainer(name) for name in config.explainers}
        if self.explainers and not self.explainable:
            self.log(f"{config.arch} is not explainable: no explanations, OrganIoU or localisation")
            self.explainers = {}

    def write_config(self, machine: dict[str, Any]) -> None:
        """``config.json``: the options and everything else that shaped the results."""
        from ctbench.core.cases import source_config
        from ctbench.runtime.devices import device_record
        from ctbench.runtime.storage import write_json

        config = self.config
        self.record = config_record(
            config,
            {
                "model_options": self.model_options,
                "start": {
                    "name": config.start,
                    "means": STARTS[config.start],
                    "pretext": self.pretext,
                },
                "recipe": self.recipe,
                "input_shape": list(self.input_shape),
                "labels": self.labels,
                "dataset_config": source_config(self.source),
                # what a dataset read from disk found: its files, how splits were made
                "dataset_index": getattr(self.source, "record", None),
                "explainable": self.explainable,
                "machine": machine,
                "device": device_record(self.device, self.precision),
                "distributed": {
                    "world_size": self.job.world_size,
                    "backend": "nccl" if self.device.type == "cuda" else "gloo",
                }
                if self.job.enabled
                else None,
                "workers": self.workers,
            },
        )
        if self.job.is_main:
            write_json(self.files.config, self.record)

    def make_splits(self) -> None:
        """Train, valid and test datasets; allowed regions where explanations or the mask loss
        need them, lesion masks for scoring where the dataset has them."""
        from ctbench.core.cases import SPLITS
        from ctbench.core.registry import default_registry
        from ctbench.data.loader import VolumeDataset

        config = self.config
        self.regions = None
        organ_head = config.oracle == "organ-head"
        if self.explainers or config.mask_loss or organ_head:
            from ctbench.regions.partition import AllowedRegions

            map_shape = (self.input_shape[0], *tuple(self.model.representation_shape)[1:])
            self.regions = AllowedRegions(
                self.labels,
                map_shape,
                self.preprocessing,
                segmenter=config.segmenter,
                downsampler=config.downsampler,
                dilate=config.dilate,
                cache_dir=Path(getattr(self.source, "folder", self.folder)) / "partition",
                device=self.device,
            )
        from ctbench.data.volume_cache import cache_for

        volumes = cache_for(self.source, self.preprocessing.volume_shape, self.folder / "cache")
        meta = default_registry().get("datasets", config.dataset).meta
        has_lesions = bool(meta.get("finding_masks"))

        def split(name: str, train: bool) -> VolumeDataset:
            needs_regions = self.regions is not None and (
                not train or config.mask_loss or organ_head
            )
            return VolumeDataset(
                self.source,
                name,
                preprocessing=self.preprocessing,
                augment=train,
                seed=config.seed,
                with_findings=has_lesions and not train,
                allowed_regions=self.regions if needs_regions else None,
                organ_cells=organ_head,
                raw=True,
                volume_cache=volumes,
            )

        self.datasets = {name: split(name, name == "train") for name in SPLITS}

    def check_cases(self) -> list[dict[str, str]]:
        """Every case loaded once (bad ones skipped and listed), then every split checked:
        an empty one stops the run here, before any training."""
        with self.timer.phase("partition"):
            skipped = check_cases(self.datasets, self.progress, self.job)
        for case in skipped:
            self.log(f"skipped {case['split']} case {case['case_id']}: {case['error']}")
        check_splits(self.datasets, self.config.dataset, skipped)
        return skipped

    def train(self, resume: bool) -> list[dict[str, Any]]:
        """Fit (resumable), then load the best checkpoint; the epoch records."""
        import ctbench
        from ctbench.runtime.checkpoints import load_checkpoint
        from ctbench.train.training import Trainer, TrainSettings

        config = self.config
        # every TrainSettings field a run option of the same name sets; workers as resolved
        shared = {f.name for f in fields(TrainSettings)} & {f.name for f in fields(config)}
        shared -= {"workers"}
        settings = TrainSettings(
            **{name: getattr(config, name) for name in shared}, workers=self.workers
        )
        self.trainer = Trainer(
            self.model,
            settings,
            self.datasets["train"],
            self.datasets["valid"],
            self.files.checkpoints,
            checkpoint_info={
                "arch": config.arch,
                "input_shape": self.input_shape,
                "label_names": self.labels,
                "model_options": self.model_options,
            },
            explain_for_loss=lambda graph: ctbench.create_explainer(
                config.mask_explainer, create_graph=graph
            ),
            progress=self.progress,
            log=self.log,
            device=self.device,
            precision=self.precision,
            job=self.job,
        )
        with self.timer.phase("train"):
            history = self.trainer.fit(resume=resume)
        self.model.load_state_dict(load_checkpoint(self.trainer.best_path)["state_dict"])
        return history

    def evaluate(self) -> dict[str, Any]:
        """Predictions and explanations of the validation and test splits (and, with
        confounders, of the cue-shifted test splits: ``self.shifted``)."""
        evaluated = {}
        for name in ("valid", "test"):
            with self.timer.phase(f"evaluate_{name}"):
                evaluated[name] = self._predict(self.datasets[name], self.explainers)
        self.shifted = self._evaluate_shifts()
        return evaluated

    def _predict(self, dataset, explainers: dict[str, Any]):
        """``predict_and_explain`` of ``dataset`` on this run's device, precision, ranks and
        oracle."""
        from ctbench.evaluate.evaluation import predict_and_explain

        return predict_and_explain(
            self.model,
            dataset,
            explainers,
            batch_size=max(1, self.config.batch_size // self.job.world_size),
            progress=self.progress,
            device=self.device,
            precision=self.precision,
            job=self.job,
            oracle=self.oracle_explainer,
        )

    def _evaluate_shifts(self) -> dict[str, Any]:
        """With confounders, on a dataset that offers them (``shift_source``): predictions on
        the same test cases with their cues agreeing as in training and by chance."""
        from ctbench.data.loader import VolumeDataset

        if not self.config.confounders or not hasattr(self.source, "shift_source"):
            return {}
        organ_head = self.oracle_explainer is not None
        shifted = {}
        self.shift_sources = {}
        for kind in ("iid", "balanced"):
            source = self.source.shift_source(kind)
            dataset = VolumeDataset(
                source,
                "test",
                preprocessing=self.preprocessing,
                allowed_regions=self.regions if organ_head else None,
                organ_cells=organ_head,
            )
            with self.timer.phase(f"evaluate_{kind}"):
                shifted[kind] = self._predict(dataset, {})
            self.shift_sources[kind] = source
        return shifted

    def score(self, evaluated: dict[str, Any]):
        """``(metrics, per-label table)``: AUROC, OrganIoU and localisation, and with
        confounders the AUROC under each cue shift (``ctbench.evaluate.shift``) and the
        counterfactual shortcut measures (``ctbench.evaluate.shortcut``)."""
        import numpy as np
        from ctbench.evaluate.evaluation import score_run
        from ctbench.evaluate.shift import confounded_labels, shift_scores

        with self.timer.phase("score"):
            metrics, table = score_run(
                evaluated["valid"], evaluated["test"], self.labels, self.device
            )
            if not self.config.confounders:
                return metrics, table
            confounded = confounded_labels(self.source, self.config.dataset)
            if self.shifted:
                splits = {**self.shifted, "reversed": evaluated["test"]}
                sources = {**self.shift_sources, "reversed": self.source}
                for kind, out in splits.items():  # read once: the shift scores and the CSV
                    out.cues = {
                        label: np.array([sources[kind].cue_present(c, label) for c in out.case_ids])
                        for label in confounded
                    }
                metrics["shift"] = shift_scores(splits, self.labels, confounded)
        if hasattr(self.source, "counterfactual"):
            metrics["shortcut"] = self._shortcut(confounded)
        return metrics, table

    def _shortcut(self, confounded: tuple[str, ...]) -> dict[str, Any]:
        """``metrics.json["shortcut"]``: the test cases again with each confounded label's cue
        toggled and its finding removed (``ctbench.evaluate.shortcut``), explained by the mask
        explainer where the model is explainable."""
        import ctbench
        from ctbench.evaluate.shortcut import shortcut_scores

        name = self.config.mask_explainer if self.explainable else None
        regions = self.regions if name is not None else None

        def allowed_of(case_id: str):
            if regions.is_cached(case_id):
                return regions.cached(case_id)
            return regions(self.source.load(case_id))

        with self.timer.phase("evaluate_shortcut"):
            return shortcut_scores(
                self.model,
                ctbench.create_explainer(name) if name is not None else None,
                self.datasets["test"],
                self.labels,
                confounded,
                allowed_of if regions is not None else None,
                batch_size=max(1, self.config.batch_size),
                device=self.device,
                precision=self.precision,
                progress=self.progress,
            )

    def write_figures(self, history: list[dict[str, Any]], test) -> None:
        from ctbench.experiments.results import write_figures

        with self.timer.phase("figures"):
            write_figures(
                self.files.figures, history, test, self.datasets["test"], self.labels,
                self.config,
            )  # fmt: skip

    def summary(self, history, evaluated, skipped, memory) -> dict[str, Any]:
        """What ``metrics.json`` holds besides the scores: time, cases, memory, training."""
        return {
            "timing": self.timer.seconds,
            "explain_seconds": {
                name: sum(out.explain_seconds.get(name, 0.0) for out in evaluated.values())
                for name in self.explainers
            },
            "cases": {name: len(dataset.case_ids) for name, dataset in self.datasets.items()},
            "memory": memory,
            "training": {
                "best_epoch": self.trainer.best_epoch,
                "head_epochs_run": sum(r.get("stage") == "head" for r in history),
                "layer4_epochs_run": sum(r.get("stage") == "layer4" for r in history),
                "epochs_run": sum(r.get("stage") == "full" for r in history),
                "stopped_early": self.trainer.bad_epochs >= self.config.patience,
                "history": history,
            },
            "skipped_cases": skipped,
            "config": self.record,
        }


def preset_pretext(
    source,
    dataset: str,
    preset: str,
    *,
    cache_dir=None,
    rebuild: bool = False,
    progress=None,
    log=None,
    device="cpu",
    **overrides,
) -> Path:
    """The pretext weights runs of ``dataset``'s ``preset`` start from (its recipe's
    ``pretext_epochs``; ``overrides`` change other settings), for ``source``'s geometry: built
    first when missing."""
    from ctbench.data.preprocess import Preprocessing
    from ctbench.train.pretraining import PretextSettings, pretext_weights

    epochs = preset_defaults(dataset, preset)["pretext_epochs"]
    return pretext_weights(
        source,
        Preprocessing(volume_shape=tuple(source.volume_shape)),
        PretextSettings(**{"epochs": epochs, **overrides}),
        cache_dir=cache_dir,
        rebuild=rebuild,
        progress=progress,
        log=log,
        device=device,
    )


def pretext_start(config: RunConfig, source, timer: Timer, progress, log, job=None, device="cpu"):
    """``(weights path, its build record)`` of the dataset's pretext start, built once on
    ``device`` (by rank 0 first under torchrun).

    A model that never loads weights is refused before the build, not after it.
    """
    from ctbench.experiments.run_config import capabilities
    from ctbench.runtime.distributed import Distributed

    job = job or Distributed()
    if not capabilities(config.arch)["pretrainable"]:  # resolved() refuses it first
        raise ValueError(f"{config.arch} never loads pretrained weights; use --start random")
    with timer.phase("pretext"):
        path = job.main_first(
            lambda: preset_pretext(
                source,
                config.dataset,
                config.preset,
                progress=progress,
                log=log,
                device=device,
                seed=config.pretext_seed,
            )
        )
    from ctbench.runtime.storage import read_json

    record = read_json(path.with_suffix(".json"))
    return str(path), {"path": str(path), **record}
