"""A run's options: :class:`RunConfig`, the presets that fill its defaults, and the starts.

RunConfig is the one definition of ``ctbench run``'s options: each field carries its help and
value rules (:func:`option`), from which ``ctbench run`` builds its click options and
``ctbench matrix`` checks a spec's keys (:func:`cli_fields`, :func:`field_for_key`).
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from typing import Any

from ctbench.core import paper

DEFAULT_LAMBDA = paper.MASK_LAMBDA
"""The paper's weight of the mask loss (``ctbench.core.paper``)."""

RUN_PRESETS: dict[str, dict[str, Any]] = {
    # Training defaults per data preset; every one can be overridden on the command line.
    # ``start``: where ResNet-18 starts (see STARTS). With a pretrained start the phantom
    # presets train the head on the frozen backbone's cached output (``head_epochs``, see
    # ctbench.train.warmup) and run no full epoch; from random weights they train ``scratch_epochs``
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
        "epochs": paper.EPOCHS,
        "scratch_epochs": paper.EPOCHS,
        "batch_size": paper.BATCH_SIZE,
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
    "imagenet": "ResNet-18 from torchvision's ImageNet weights (torch hub cache; downloaded there "
    "when online)",
    "random": "every weight random (PyTorch's default initialisation)",
    "weights": "ResNet-18 from the file given by --weights",
}
"""Where a run's ResNet-18 starts; config.json's ``run.start`` is one of these."""

STARTED_FROM = {
    "pretext": "the dataset's pretext weights",
    "imagenet": "ImageNet weights",
    "weights": "the --weights file",
    "random": "random weights",
}
"""How the recipe's log line and errors name each start."""


def chosen_start(start: str | None, pretrained: bool | None, has_weights: bool) -> str | None:
    """The start the options name: a weights file, else ``start``, else ``pretrained``
    (imagenet / random); None when they name none (the caller's default applies)."""
    if has_weights:
        return "weights"
    if start is None and pretrained is not None:
        return "imagenet" if pretrained else "random"
    return start


DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps."
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""``--device`` and ``--precision`` (``ctbench.runtime.devices`` resolves them), torch-free here."""

DEFAULT_LR = paper.LEARNING_RATE
"""The paper's learning rate; the phantom presets use it with Adam too."""

DEFAULT_EXPLAINERS = ("hirescam", "gradcam")
"""The explainers a run scores when none is named."""


MAX_SEED = 2**32 - 1
"""The largest seed (numpy's and torch's generators all take 0 .. 2**32 - 1)."""


def option(default: Any = MISSING, *, help: str, flag: str | None = None, **cli: Any) -> Any:
    """A RunConfig field with what the command line and matrix specs need to know of it.

    ``help`` is the ``--help`` text, ``flag`` the option name when it is not the field's
    (``--lambda`` for ``mask_lambda``); the other keys describe its values: ``plugin`` (a
    registry kind), ``choices``, ``minimum``, ``maximum``, ``positive`` and ``cli=False`` for
    fields that ``ctbench run`` sets through shared options (``--start``/``--pretrained``/
    ``--weights``).
    ``ctbench.cli.commands.run`` builds the click options from these, and a matrix spec's keys are
    the same option names, so a new run option is declared here once.
    """
    metadata = {"help": help, "flag": flag, **cli}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's results; saved as ``config.json``.

    Each field is one ``ctbench run`` option (see :func:`option`); ``None`` means "the preset's"
    and :meth:`resolved` fills it.
    """

    arch: str = option(help="Architecture.", plugin="architectures")
    explainers: tuple[str, ...] = option(
        DEFAULT_EXPLAINERS,
        flag="--explainer",
        plugin="explainers",
        help="Explainer(s) to score (repeat). Default: hirescam and gradcam.",
    )
    dataset: str = option("phantom", plugin="datasets", help="Dataset.")
    data_root: str | None = option(
        None,
        folder=True,
        help="The dataset's folder, for datasets read from disk (rad-chestct, ct-rate, folder).",
    )
    preset: str = option("default", help="tiny, default or paper.")
    segmenter: str = option("morphological", plugin="segmenters", help="Organ segmenter.")
    mask_explainer: str = option(
        "hirescam",
        plugin="explainers",
        help="Explainer the mask loss trains through (must accept create_graph).",
    )
    confounders: bool = option(False, help="Phantom: plant cues, reversed in test.")
    mask_loss: bool = option(False, help="Train with the mask loss (paper section 3.6).")
    mask_lambda: float = option(
        DEFAULT_LAMBDA,
        flag="--lambda",
        minimum=0,
        help="Weight of the mask loss (the paper's 1/3).",
    )
    downsampler: str | None = option(
        None,
        plugin="downsamplers",
        help="Organ mask -> map grid. Default: the preset's (phantom: area; paper: nearest).",
    )
    dilate: bool = option(False, help="Dilate the downsampled organ masks.")
    seed: int = option(
        0, help="Seed of weights, augmentation and batch order.", minimum=0, maximum=MAX_SEED
    )
    start: str | None = option(None, cli=False, help="Where ResNet-18 starts (see STARTS).")
    head_epochs: int | None = option(
        None,
        minimum=0,
        help="Epochs of the head on the frozen backbone's cached output, before the full "
        "epochs. Default: the preset's with a pretrained start (phantom default: 60), 0 from "
        "random weights.",
    )
    epochs: int | None = option(
        None,
        minimum=0,
        help="Full epochs (backbone included). Default: the preset's (phantom: 0 after the head "
        "warm-up, 3 from random weights; paper: 100).",
    )
    patience: int = option(
        paper.PATIENCE, minimum=1, help="Epochs without a better validation loss."
    )
    optimizer: str | None = option(
        None,
        choices=("sgd", "adam"),
        help="Default: the preset's (phantom: adam; paper: sgd with momentum 0.99).",
    )
    schedule: str | None = option(
        None,
        choices=("constant", "cosine"),
        help="Learning-rate schedule. Default: the preset's (phantom: cosine; paper: constant).",
    )
    lr: float | None = option(None, positive=True, help="Learning rate. Default: 1e-3.")
    batch_size: int | None = option(None, minimum=1, help="Default: the preset's.")
    workers: int | None = option(
        None,
        minimum=0,
        help="DataLoader worker processes. Default: chosen from the machine (none on the CPU, "
        "the node's cores per process on a GPU, at most 8).",
    )
    channels_last: bool = option(
        True, help="Channels-last memory format (faster convolutions on CPU and GPU)."
    )
    device: str = option("auto", help=DEVICE_HELP)
    precision: str = option(
        "auto",
        choices=PRECISIONS,
        help="torch.autocast precision. auto: bf16 on GPUs that support it, else fp32; fp16 "
        "trains with a gradient scaler.",
    )
    compile: bool = option(False, help="torch.compile the model's slice backbone (or model).")
    pretrained: bool | None = option(None, cli=False, help="ResNet-18 from ImageNet weights.")
    weights: str | None = option(None, cli=False, help="Local ResNet-18 weights file.")
    overlays: int = option(4, minimum=0, help="Overlay figures.")
    dataset_options: dict[str, Any] = option(  # noqa: RUF009 (option returns a factory field)
        {}, cli=False, help="Dataset-specific options (a matrix spec's [run.dataset_options])."
    )

    def resolved(self) -> RunConfig:
        """Fill every ``None`` from the preset's defaults and the model's declared capabilities
        (unknown presets use ``paper``), and refuse, before any work, an option the model
        cannot honour. :meth:`recipe` says which training recipe that makes, and why.

        The start: ``weights`` -> "weights"; else ``start``; else ``pretrained`` True/False ->
        "imagenet"/"random"; else the preset's, or "random" for a model that does not declare
        ``pretrainable=True`` (``axialnet-randinit``, ``3dconv``, a plugin written without
        it). A head warm-up needs a pretrained start and a declared trunk split
        (``trunk=True``); without one the run trains end to end: the preset's
        ``scratch_epochs`` full epochs from random weights, its ``epochs`` (or
        ``scratch_epochs`` where those are 0) from a pretrained start.
        """
        for name in ("mask_lambda", "lr"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be 0 to {MAX_SEED}, got {self.seed}")
        from ctbench.core.contracts import declared_of

        check_preset(self.dataset, self.preset)
        defaults = RUN_PRESETS.get(self.preset, RUN_PRESETS["paper"])
        declared = capabilities(self.arch)
        start = chosen_start(self.start, self.pretrained, bool(self.weights))
        if start is None:
            start = defaults["start"]
            if start == "pretext" and not declared_of("datasets", self.dataset)["pretext"]:
                start = "imagenet"  # only a dataset that builds a pretext pool can start from it
            if not declared["pretrainable"]:
                start = "random"
        if start not in STARTS:
            raise ValueError(f"unknown start {start!r}; choose {', '.join(STARTS)}")
        if start != "random" and not declared["pretrainable"]:
            raise ValueError(
                f"{self.arch} does not declare pretrainable=True, so it cannot start from "
                f"{STARTED_FROM[start]}; leave the start to the model (no --start, "
                "--pretrained or --weights) or use --start random"
            )
        if self.mask_loss and not declared_of("explainers", self.mask_explainer)["differentiable"]:
            raise ValueError(
                f"--mask-explainer {self.mask_explainer} does not declare "
                "differentiable=True (its maps cannot be trained through); choose one "
                "that does, such as hirescam"
            )
        if self.head_epochs and not declared["trunk"]:
            raise ValueError(
                f"--head-epochs {self.head_epochs}: {self.arch} declares no trunk split "
                "(trunk=True with backbone, backbone_features and from_backbone_features), so "
                "its head cannot be trained on a frozen trunk's output; leave --head-epochs out"
            )
        scratch = start == "random"
        filled = {
            key: defaults[key] if getattr(self, key) is None else getattr(self, key)
            for key in ("batch_size", "optimizer", "schedule", "downsampler")
        }
        head_epochs = self.head_epochs
        if head_epochs is None:
            head_epochs = defaults["head_epochs"] if declared["trunk"] and not scratch else 0
        epochs = self.epochs
        if epochs is None:
            epochs = defaults["epochs"]
            if scratch or (head_epochs == 0 and epochs == 0):
                epochs = defaults["scratch_epochs"]  # end to end: full epochs are all there is
        if epochs + head_epochs < 1:
            raise ValueError("--epochs 0 and --head-epochs 0 leave nothing to train")
        return replace(
            self,
            **filled,
            start=start,
            epochs=epochs,
            head_epochs=head_epochs,
            lr=DEFAULT_LR if self.lr is None else self.lr,
            pretrained=start != "random",
        )

    def recipe(self) -> dict[str, str]:
        """``{"name", "why"}`` of a resolved config's training recipe, for the run's log and
        config.json: which steps run, and what in the options or the model's declarations
        chose them."""
        declared = capabilities(self.arch)
        if self.start == "random":
            reason = (
                f"{self.arch} does not declare pretrainable=True"
                if not declared["pretrainable"]
                else "a random start was asked for"
            )
            if self.head_epochs:
                name = "head warm-up on the randomly initialised trunk, then end to end"
            else:
                name = "end to end from the model's own initialisation"
            return {"name": name, "why": f"{reason}; {self.epochs} full epochs"}
        origin = STARTED_FROM[self.start]
        if self.head_epochs:
            return {
                "name": "head warm-up on the frozen pretrained trunk"
                + (", then end to end" if self.epochs else ""),
                "why": f"{self.arch} declares a trunk split (trunk=True) and starts from "
                f"{origin}: {self.head_epochs} head epochs on the trunk's cached output, "
                f"{self.epochs} full epochs",
            }
        why = (
            f"{self.arch} declares no trunk split (trunk=True), so no head warm-up"
            if not declared["trunk"]
            else "no head warm-up was asked for"
        )
        return {
            "name": "end to end from a pretrained start",
            "why": f"starts from {origin}; {why}; {self.epochs} full epochs",
        }

    def folder_name(self) -> str:
        """A readable name that differs whenever an option that changes results differs."""
        parts = [self.arch, "+".join(self.explainers) or "noexplainer"]
        if self.mask_loss:
            parts.append(f"mask{self.mask_lambda:.3g}")
        parts += [self.dataset, self.preset]
        if self.confounders:
            parts.append("confounders")
        parts.append(f"seed{self.seed}")
        from ctbench.runtime.storage import config_key, safe_name

        name = "-".join(parts) + "-" + config_key(self.to_json())[:6]
        return safe_name(name, "the run folder name")  # a preset such as '../x' is refused

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        """The config of :meth:`to_json`'s output (``config.json``'s ``run``)."""
        return cls(**{**data, "explainers": tuple(data.get("explainers", ()))})

    def to_json(self) -> dict[str, Any]:
        data = json.loads(json.dumps(asdict(self)))
        if (
            data["data_root"] is None
        ):  # unset, it leaves the phantom runs' folder names as they were
            del data["data_root"]
        return data


def check_preset(dataset: str, preset: str) -> None:
    """One error, before any work, for a preset the dataset does not declare (its
    registration's ``presets``); a dataset that declares none takes any name."""
    from ctbench.core.contracts import declared_of

    presets = declared_of("datasets", dataset)["presets"]
    if presets and preset not in presets:
        raise ValueError(
            f"unknown preset {preset!r} for dataset {dataset!r}; its presets: {', '.join(presets)}"
        )


def capabilities(arch: str) -> dict[str, Any]:
    """What architecture ``arch`` declares in its registration, defaults filled
    (``ctbench.core.contracts.METADATA["architectures"]``: ``pretrainable``, ``trunk``, ...)."""
    from ctbench.core.contracts import declared_of

    return declared_of("architectures", arch)


def cli_fields() -> list[tuple[Field, Any]]:
    """RunConfig's fields that are ``ctbench run`` options of their own, with their types."""
    hints = typing.get_type_hints(RunConfig)
    return [(f, hints[f.name]) for f in fields(RunConfig) if f.metadata.get("cli", True)]


def option_name(run_field: Field) -> str:
    """The option's name without dashes, with underscores: ``mask_lambda`` -> ``lambda``."""
    flag = run_field.metadata.get("flag") or "--" + run_field.name.replace("_", "-")
    return flag.lstrip("-").replace("-", "_")


def field_for_key(key: str) -> Field:
    """The RunConfig field a spec key names: the option's name (``lambda``, ``explainer``) or
    the field's (``mask_lambda``, ``explainers``); an unknown key lists the known ones."""
    for run_field in fields(RunConfig):
        if key in (run_field.name, option_name(run_field)):
            return run_field
    known = sorted(option_name(f) for f in fields(RunConfig))
    raise KeyError(f"unknown run option {key!r}; known: {', '.join(known)}")
