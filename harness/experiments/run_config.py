"""A run's options: :class:`RunConfig`, the training recipes presets choose, and the starts.

RunConfig is the one definition of ``ctbench run``'s options: each field carries its help and
value rules (:func:`option`), from which ``ctbench run`` builds its click options and
``ctbench matrix`` checks a spec's keys (:func:`cli_fields`, :func:`field_for_key`).
"""

from __future__ import annotations

import functools
import json
import math
import typing
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from typing import Any

from ctbench.core import paper
from ctbench.runtime.device_names import DEVICE_HELP, PRECISIONS
from ctbench.train.mask_forms import MASK_LOSS_FORMS
from ctbench.train.oracles import ORACLES

DEFAULT_LAMBDA = paper.MASK_LAMBDA
"""The paper's weight of the mask loss (``ctbench.core.paper``)."""

TRAINING_RECIPES: dict[str, dict[str, Any]] = {
    # How a preset trains; a dataset's preset table names one per preset (and may override
    # any key, see PRESET_KEYS). ``start``: where ResNet-18 starts (see STARTS). With a
    # pretrained start the CPU recipes train the head on the frozen backbone's cached output
    # (``head_epochs``, see ctbench.train.warmup) and run no full epoch; from random weights
    # they train ``scratch_epochs`` full epochs (docs/learning-investigation.md).
    "cpu-tiny": {
        "start": "pretext",
        "finetune": "head",
        "pretext_epochs": 2,
        "head_epochs": 20,
        "layer4_epochs": 3,
        "epochs": 0,
        "scratch_epochs": 3,
        "batch_size": 4,
        "optimizer": "adam",
        "schedule": "cosine",
    },
    "cpu": {
        "start": "pretext",
        "finetune": "head",
        "pretext_epochs": 10,
        "head_epochs": 60,
        "layer4_epochs": 12,
        "epochs": 0,
        "scratch_epochs": 3,
        "batch_size": 4,
        "optimizer": "adam",
        "schedule": "cosine",
    },
    "paper": {
        "start": "imagenet",
        "finetune": "all",
        "pretext_epochs": 10,
        "head_epochs": 0,
        "layer4_epochs": 10,
        "epochs": paper.EPOCHS,
        "scratch_epochs": paper.EPOCHS,
        "batch_size": paper.BATCH_SIZE,
        "optimizer": "sgd",
        "schedule": "constant",
    },
}
"""The training recipes a dataset's presets choose from: ``cpu-tiny`` and ``cpu`` start from the
dataset's pretext (``ctbench pretrain``) and run offline on a CPU; ``paper`` trains as the paper
(SGD, batch 1, up to 100 epochs, ImageNet start)."""

PRESET_KEYS = ("recipe", *TRAINING_RECIPES["paper"], "downsampler")
"""What a dataset's preset may set for a run: its ``recipe`` (a name of TRAINING_RECIPES,
default ``paper``), any of the recipe's keys, and the ``downsampler`` (default: the one
downsampler that declares ``default=True``)."""


def preset_defaults(dataset: str, preset: str) -> dict[str, Any]:
    """The run defaults of ``dataset``'s ``preset``, from the dataset's registration
    (``presets``): its recipe's numbers with the preset's own keys over them. A name the
    dataset does not declare is one ValueError listing its presets; a dataset that declares no
    presets takes any name, with the paper's recipe."""
    from ctbench.core.contracts import declared_of

    declared = declared_of("datasets", dataset)["presets"]
    if declared and preset not in declared:
        raise ValueError(
            f"unknown preset {preset!r} for dataset {dataset!r}; its presets: {', '.join(declared)}"
        )
    entry = declared[preset] if isinstance(declared, dict) else {}
    return run_defaults(entry, f"dataset {dataset!r}, preset {preset!r}")


def run_defaults(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """A preset table entry's run defaults: its recipe's numbers (``paper`` when it names
    none) with the entry's own keys over them; an unknown key or recipe is a ValueError
    starting with ``where``."""
    entry = dict(entry)
    unknown = set(entry) - set(PRESET_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown run default(s) {', '.join(sorted(unknown))}; a preset sets "
            f"{', '.join(PRESET_KEYS)}"
        )
    recipe = entry.pop("recipe", "paper")
    if recipe not in TRAINING_RECIPES:
        raise ValueError(
            f"{where}: unknown recipe {recipe!r}; recipes: {', '.join(TRAINING_RECIPES)}"
        )
    return {"recipe": recipe, "downsampler": None, **TRAINING_RECIPES[recipe], **entry}


SCOPES = {
    "head": "everything after the backbone trains on the frozen backbone's cached output",
    "layer4": "ResNet's layer4 and everything after it train on the cached output of the frozen "
    "layers up to layer3, computed once per volume and augmentation",
    "all": "the whole model trains end to end (the paper's way)",
}
"""``--finetune``: which part of a model trains; the rest stays frozen (BatchNorm in eval mode)."""

STARTS = {
    "pretext": "ResNet-18 from the dataset's own pretext (ctbench pretrain), built once and cached",
    "imagenet": "ResNet-18 from torchvision's ImageNet weights (torch hub cache; downloaded there "
    "when online)",
    "random": "every weight random (PyTorch's default initialisation)",
    "weights": "ResNet-18 from the file given by --weights",
}
"""Where a run's ResNet-18 starts; config.json's ``run.start`` is one of these."""

START_NAMES = tuple(start for start in STARTS if start != "weights")
"""What ``--start`` takes (``weights`` is chosen by ``--weights``)."""

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


DEFAULT_LR = paper.LEARNING_RATE
"""The paper's learning rate; the phantom presets use it with Adam too."""

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
    explainers: tuple[str, ...] | None = option(
        None,
        flag="--explainer",
        plugin="explainers",
        help="Explainer(s) to score (repeat). Default: the explainers that declare default=True "
        "(built in: hirescam and gradcam).",
    )
    dataset: str | None = option(
        None,
        plugin="datasets",
        help="Dataset. Default: the one that declares default=True (built in: phantom).",
    )
    data_root: str | None = option(
        None,
        folder=True,
        help="The dataset's folder, for datasets read from disk (rad-chestct, ct-rate, folder).",
    )
    preset: str = option(
        "default",
        help="The dataset's preset: its data geometry and training defaults (the built-in "
        "datasets: tiny, default, paper).",
    )
    segmenter: str | None = option(
        None,
        plugin="segmenters",
        help="Organ segmenter. Default: the one that declares default=True (built in: "
        "morphological).",
    )
    mask_explainer: str | None = option(
        None,
        plugin="explainers",
        help="Explainer the mask loss trains through (must declare differentiable=True). "
        "Default: the first default explainer that does (built in: hirescam).",
    )
    confounders: bool = option(False, help="Phantom: plant cues, reversed in test.")
    mask_loss: bool = option(False, help="Train with the mask loss (paper section 3.6).")
    mask_loss_form: str = option(
        "paper",
        choices=tuple(MASK_LOSS_FORMS),
        help="How the mask loss sums the forbidden cells: paper (mean over the batch's), "
        "per-case (mean per volume and label, then over those) or two-sided (the absolute "
        "attention).",
    )
    mask_lambda: float = option(
        DEFAULT_LAMBDA,
        flag="--lambda",
        minimum=0,
        help="Weight of the mask loss (the paper's 1/3).",
    )
    downsampler: str | None = option(
        None,
        plugin="downsamplers",
        help="Organ mask -> map grid. Default: the preset's, else the one that declares "
        "default=True (phantom tiny/default: area; paper: nearest).",
    )
    dilate: bool = option(False, help="Dilate the downsampled organ masks.")
    seed: int = option(
        0, help="Seed of weights, augmentation and batch order.", minimum=0, maximum=MAX_SEED
    )
    pretext_seed: int = option(
        0,
        minimum=0,
        maximum=MAX_SEED,
        help="Training seed of the pretext a pretext start builds or reuses (ctbench pretrain "
        "--seed): the trunk is a source of variance besides --seed.",
    )
    start: str | None = option(None, cli=False, help="Where ResNet-18 starts (see STARTS).")
    head_epochs: int | None = option(
        None,
        minimum=0,
        help="Epochs of the head on the frozen backbone's cached output, before the layer4 and "
        "full epochs. Default: the preset's with a pretrained start and --finetune head or "
        "layer4 (phantom default: 60), 0 from random weights.",
    )
    layer4_epochs: int | None = option(
        None,
        minimum=0,
        help="With --finetune layer4, epochs of ResNet's layer4 and everything after it on the "
        "cached output of the frozen layers (per volume and augmentation), after the head's, "
        "at a tenth of --lr. Default: the preset's (phantom default: 12).",
    )
    oracle: str = option(
        "none",
        choices=tuple(ORACLES),
        help="An oracle that bounds what a spatial method could do against a cue: organ-head "
        "(each label's per-cell contributions outside its organs zeroed, in training and at "
        "test) or input-mask (voxels outside the segmented organs set to a constant before "
        "the model).",
    )
    finetune: str | None = option(
        None,
        choices=tuple(SCOPES),
        help="What trains: head (after the frozen backbone), layer4 (the head, then ResNet's "
        "layer4 on), or "
        "all (end to end). Default: the preset's recipe's (phantom: head; paper: all), all "
        "from random weights; a model supports the scopes it declares.",
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
        """Fill every ``None`` from the plugins' declared defaults, the dataset's preset and the
        model's declared capabilities, and refuse, before any work, an option the model cannot
        honour or a preset the dataset does not declare. This is the one place a run's options
        are resolved (``ctbench run``, matrix cells and the API all call it); :meth:`recipe`
        says which training recipe that makes, and why.

        Plugins: the dataset, segmenter and explainers that declare ``default=True``; the mask
        explainer is the first default explainer that declares ``differentiable=True``; the
        downsampler is the preset's, else the one that declares ``default=True``.

        The start: ``weights`` -> "weights"; else ``start``; else ``pretrained`` True/False ->
        "imagenet"/"random"; else the preset's, or "random" for a model that does not declare
        ``pretrainable=True`` (``axialnet-randinit``, ``3dconv``, a plugin written without
        it). A head warm-up needs a pretrained start and a declared trunk split
        (``trunk=True``); without one the run trains end to end: the preset's
        ``scratch_epochs`` full epochs from random weights, its ``epochs`` (or
        ``scratch_epochs`` where those are 0) from a pretrained start. A model whose trunk has
        nothing to learn (``fixed_trunk=True``) trains its head alone on the trunk's cached
        output for the preset's ``head_epochs`` and no full epoch.
        """
        for name in ("mask_lambda", "lr"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be 0 to {MAX_SEED}, got {self.seed}")
        from ctbench.core.contracts import declared_of, default_name, default_names

        dataset = self.dataset or default_name("datasets")
        explainers = self.explainers
        if explainers is None:
            explainers = tuple(default_names("explainers"))
        needs_maps = self.mask_loss or self.oracle == "organ-head"
        mask_explainer = self.mask_explainer or _default_mask_explainer(needs_maps)
        defaults = preset_defaults(dataset, self.preset)
        declared = capabilities(self.arch)
        start = chosen_start(self.start, self.pretrained, bool(self.weights))
        if start is None:
            start = defaults["start"]
            if start == "pretext" and not declared_of("datasets", dataset)["pretext"]:
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
        if self.mask_loss and not declared_of("explainers", mask_explainer)["differentiable"]:
            raise ValueError(
                f"--mask-explainer {mask_explainer} does not declare "
                "differentiable=True (its maps cannot be trained through); choose one "
                "that does, such as hirescam"
            )
        if self.head_epochs and not declared["trunk"]:
            raise ValueError(
                f"--head-epochs {self.head_epochs}: {self.arch} declares no trunk split "
                "(trunk=True with backbone, backbone_features and from_backbone_features), so "
                "its head cannot be trained on a frozen trunk's output; leave --head-epochs out"
            )
        if declared["fixed_trunk"] and not declared["trunk"]:
            raise ValueError(f"{self.arch} declares fixed_trunk=True without trunk=True")
        scratch = start == "random"
        finetune = self._scope(defaults, declared, scratch)
        filled = {
            key: defaults[key] if getattr(self, key) is None else getattr(self, key)
            for key in ("batch_size", "optimizer", "schedule", "downsampler")
        }
        filled["downsampler"] = filled["downsampler"] or default_name("downsamplers")
        head_epochs = self.head_epochs
        if head_epochs is None:
            head_epochs = defaults["head_epochs"] if finetune in ("head", "layer4") else 0
        layer4_epochs = self.layer4_epochs
        if layer4_epochs is None:
            layer4_epochs = defaults["layer4_epochs"] if finetune == "layer4" else 0
        if layer4_epochs and finetune != "layer4":
            raise ValueError(f"--layer4-epochs {layer4_epochs} needs --finetune layer4")
        epochs = self.epochs
        if epochs is None:
            epochs = defaults["epochs"]
            if declared["fixed_trunk"] and finetune == "head" and head_epochs:
                epochs = 0  # a full epoch could change nothing the head epochs do not
            elif scratch or (head_epochs == 0 and epochs == 0):
                epochs = defaults["scratch_epochs"]  # end to end: full epochs are all there is
        if epochs + head_epochs + layer4_epochs < 1:
            raise ValueError("--epochs 0 and --head-epochs 0 leave nothing to train")
        return replace(
            self,
            **filled,
            dataset=dataset,
            explainers=tuple(dict.fromkeys(explainers)),
            segmenter=self.segmenter or default_name("segmenters"),
            mask_explainer=mask_explainer,
            start=start,
            epochs=epochs,
            head_epochs=head_epochs,
            layer4_epochs=layer4_epochs,
            finetune=finetune,
            lr=DEFAULT_LR if self.lr is None else self.lr,
            pretrained=start != "random",
        )

    def _scope(self, defaults: dict[str, Any], declared: dict[str, Any], scratch: bool) -> str:
        """``--finetune``: the one asked for, if the model supports it; else the recipe's, or
        ``all`` from random weights or for a model without a trunk split."""
        scopes = supported_scopes(self.arch)
        if self.finetune is not None:
            if self.finetune not in scopes:
                raise ValueError(
                    f"--finetune {self.finetune}: {self.arch} supports --finetune "
                    f"{', '.join(scopes)} (a scope needs a declared trunk split: trunk=True for "
                    "head, scopes=('layer4',) with split_at('layer4') for layer4)"
                )
            if self.finetune == "all" and self.head_epochs:
                raise ValueError(
                    f"--finetune all trains end to end: --head-epochs {self.head_epochs} "
                    "applies to the head and layer4 scopes"
                )
            return self.finetune
        if self.head_epochs:  # a warm-up asked for by its epochs alone: the head's
            return "head"
        if declared["fixed_trunk"]:  # nothing before the head learns: train the head alone
            return "head"
        chosen = "all" if scratch else defaults["finetune"]
        return chosen if chosen in scopes else "all"

    @property
    def is_resolved(self) -> bool:
        """Whether :meth:`resolved` filled this config (no option is left to a default)."""
        return all(getattr(self, name) is not None for name in RESOLVED_FIELDS)

    def recipe(self) -> dict[str, str]:
        """``{"name", "why"}`` of a resolved config's training recipe, for the run's log and
        config.json: which steps run, and what in the options or the model's declarations
        chose them."""
        declared = capabilities(self.arch)
        if self.finetune == "layer4" and self.layer4_epochs:
            return {
                "name": "head warm-up, then ResNet's layer4 on trained on the frozen layers' "
                "cached output" + (", then end to end" if self.epochs else ""),
                "why": f"--finetune layer4 from {STARTED_FROM[self.start]}: {self.head_epochs} "
                f"head epochs on the backbone's cached output, then layers up to layer3 frozen "
                f"and {self.layer4_epochs} layer4 epochs on their output cached per volume and "
                f"augmentation, {self.epochs} full epochs",
            }
        if declared["fixed_trunk"] and self.finetune == "head" and self.head_epochs:
            return {
                "name": "head on the fixed trunk's cached output"
                + (", then end to end" if self.epochs else ""),
                "why": f"{self.arch} declares fixed_trunk=True (its trunk has nothing to learn): "
                f"{self.head_epochs} head epochs on the trunk's cached output, "
                f"{self.epochs} full epochs",
            }
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
        parts = [self.arch, "+".join(self.explainers or ()) or "noexplainer"]
        if self.mask_loss:
            parts.append(f"mask{self.mask_lambda:.3g}")
        parts += [self.dataset, self.preset]
        if self.confounders:
            parts.append("confounders")
        if self.oracle != "none":
            parts.append(self.oracle)
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


RESOLVED_FIELDS = (
    "explainers",
    "dataset",
    "segmenter",
    "downsampler",
    "start",
    "finetune",
    "head_epochs",
    "layer4_epochs",
    "epochs",
    "optimizer",
    "schedule",
    "lr",
    "batch_size",
    "pretrained",
)
"""The fields that ``None`` leaves to :meth:`RunConfig.resolved` (``mask_explainer`` too, which
stays None only when no installed explainer could be one and the run has no mask loss)."""


def _default_mask_explainer(required: bool) -> str | None:
    """The first default explainer that declares ``differentiable=True``; None when there is
    none and no mask loss needs one."""
    from ctbench.core.contracts import declared_of, default_names

    for name in default_names("explainers"):
        if declared_of("explainers", name)["differentiable"]:
            return name
    if not required:
        return None
    raise ValueError(
        "no default --mask-explainer: no explainer that declares default=True also declares "
        "differentiable=True; name one with --mask-explainer"
    )


def supported_scopes(arch: str) -> tuple[str, ...]:
    """The ``--finetune`` scopes ``arch`` supports: ``all``; ``head`` with a declared trunk
    split; and the scopes it declares (``scopes=("layer4",)``)."""
    declared = capabilities(arch)
    extra = tuple(scope for scope in declared["scopes"] if scope in SCOPES)
    head = ("head",) if declared["trunk"] else ()
    return tuple(scope for scope in SCOPES if scope in (*head, *extra, "all"))


def capabilities(arch: str) -> dict[str, Any]:
    """What architecture ``arch`` declares in its registration, defaults filled
    (``ctbench.core.contracts.METADATA["architectures"]``: ``pretrainable``, ``trunk``, ...)."""
    from ctbench.core.contracts import declared_of

    return declared_of("architectures", arch)


@functools.cache
def field_types() -> dict[str, Any]:
    """RunConfig's field name -> type, resolved once (``typing.get_type_hints`` costs about
    0.2 ms a call, and a matrix checks every option of every cell)."""
    return typing.get_type_hints(RunConfig)


def cli_fields() -> list[tuple[Field, Any]]:
    """RunConfig's fields that are ``ctbench run`` options of their own, with their types."""
    hints = field_types()
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
