"""The written contract of each plugin kind: what the core calls, and what a plugin declares.

One place says, for architectures, explainers, segmenters, downsamplers, datasets and report
labelers (the
docs pages under ``docs/plugins/`` say the same in prose, and ``tests/test_contracts.py`` keeps
the two and the core equal):

- the **registration metadata** a plugin may declare (``register(name, factory,
  description=..., **meta)``): each key's type, the value a registration that leaves it out
  gets, and what it changes in a run. The core reads capabilities from here, never by probing
  the built object, so a run can choose its recipe (and refuse what a plugin cannot do) before
  any expensive work;
- the **members** the core reads on what the factory builds: required ones, and optional ones
  with what each changes when present;
- the per-kind :mod:`ctbench.testing` check (``check_architecture``, ``check_explainer``,
  ``check_segmenter``, ``check_downsampler``, ``check_dataset``, ``check_labeler``) that
  verifies both.

Registering an unknown metadata key, or a declared capability of the wrong type, is a
:class:`ctbench.core.registry.PluginWarning` and the registration is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Declared:
    """One registration metadata key: its type, its value when left out, what it changes."""

    kind: type | tuple[type, ...]
    default: Any
    changes: str


METADATA: dict[str, dict[str, Declared]] = {
    "architectures": {
        "pretrainable": Declared(
            bool,
            False,
            "the factory takes pretrained= and weights= and loads ResNet-18 weights: a run may "
            "start it from the pretext, ImageNet or a file; without it the run starts from the "
            "model's own initialisation and --start/--pretrained/--weights are refused",
        ),
        "trunk": Declared(
            bool,
            False,
            "the model splits into backbone, backbone_features(x) and "
            "from_backbone_features(f): a pretrained run warms the head up on the frozen "
            "trunk's cached output; without it the run trains end to end and --head-epochs "
            "is refused",
        ),
        "fixed_trunk": Declared(
            bool,
            False,
            "with trunk=True: the trunk has nothing to learn (a fixed transform of the input, "
            "such as hu-histogram's HU histograms), so a run from the model's own "
            "initialisation trains only the rest, on the trunk's cached output, for the "
            "preset's head_epochs, and no full epoch",
        ),
        "scopes": Declared(
            tuple,
            (),
            "--finetune scopes beyond head (trunk=True) and all: ('layer4',) with "
            "split_at('layer4'), which freezes the layers up to ResNet's layer3",
        ),
        "explainable": Declared(
            bool, False, "documentation only; the model's own explainable attribute decides"
        ),
        "mil": Declared(bool, False, "documentation: the model gives slice_scores(x)"),
        "paper_name": Declared(str, "", "the model's name in the paper's tables"),
    },
    "explainers": {
        "paper_name": Declared(str, "", "the explainer's name in the paper's tables (HiResCAM)"),
        "default": Declared(
            bool,
            False,
            "one of the explainers a run scores when none is named (in registration order); "
            "the first that is also differentiable is the default --mask-explainer",
        ),
        "faithful": Declared(
            bool,
            False,
            "its maps sum to the class score less the bias on a linear-head model (HiResCAM): "
            "a max-over-slices model's mask loss accepts only a faithful --mask-explainer",
        ),
        "differentiable": Declared(
            bool,
            False,
            "the factory takes create_graph=True and then keeps the maps differentiable "
            "with respect to the model's parameters: required of --mask-explainer",
        ),
    },
    "segmenters": {
        "default": Declared(
            bool,
            False,
            "the segmenter a run and ctbench segment use when none is named (one plugin may "
            "declare it)",
        ),
        "on_device": Declared(
            bool, False, "the factory takes device= (a string) and computes there"
        ),
        "heuristic": Declared(
            bool,
            False,
            "the masks do not look at the image (halves of the volume): returning them for a "
            "volume without lungs is allowed",
        ),
    },
    "downsamplers": {
        "paper_name": Declared(str, "", "the downsampling's name in the paper's Table 5"),
        "default": Declared(
            bool,
            False,
            "the downsampler of a preset that names none (one plugin may declare it)",
        ),
        "on_device": Declared(
            bool, False, "the factory takes device= (a string) and computes there"
        ),
    },
    "datasets": {
        "default": Declared(
            bool,
            False,
            "the dataset every command uses when none is named (one plugin may declare it)",
        ),
        "presets": Declared(
            (tuple, dict),
            (),
            "its presets: their names, or a table of name -> the run defaults of that preset "
            "(recipe and any of ctbench.experiments.run_config.PRESET_KEYS); --preset accepts "
            "only these names; a name without run defaults trains with the paper's recipe",
        ),
        "labels": Declared(tuple, (), "its label names (documentation)"),
        "organ_masks": Declared(
            bool,
            False,
            "its cases carry organ masks (Case.organs): segmentation Dice and organ-region "
            "faithfulness are scored",
        ),
        "finding_masks": Declared(
            bool,
            False,
            "its cases carry finding masks (Finding.mask): the pointing game and lesion IoU "
            "are scored on validation and test",
        ),
        "reads_folder": Declared(
            bool, False, "the factory takes data_root= (CLI --data-root), required"
        ),
        "pretext": Declared(
            bool,
            False,
            "its source offers pretext_source(): runs may start from ctbench pretrain's weights",
        ),
        "confounded_labels": Declared(
            tuple, (), "labels whose planted cue --confounders moves (the confounders table)"
        ),
    },
    "labelers": {
        "default": Declared(
            bool,
            False,
            "the labeler that PARTITION, the datasets and ctbench labels use when none is named "
            "(one plugin may declare it)",
        ),
        "extra": Declared(
            str,
            "",
            "documentation: the optional extra its factory needs (pip install 'ctbench[EXTRA]'); "
            "without it the factory raises one error that says so",
        ),
    },
}
"""Every registration metadata key of every kind (``description`` is required of all)."""


def metadata_problem(kind: str, meta: dict[str, Any]) -> str:
    """Why ``meta`` is not a valid declaration for ``kind`` ("" when it is)."""
    known = METADATA[kind]
    for key, value in meta.items():
        if key not in known:
            return f"unknown metadata {key}=; a {kind[:-1]} declares {', '.join(known)}"
        if not isinstance(value, known[key].kind):
            wanted = known[key].kind
            names = (
                wanted.__name__
                if isinstance(wanted, type)
                else "/".join(t.__name__ for t in wanted)
            )
            return f"metadata {key}={value!r} must be a {names}"
    return ""


def declared(kind: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Every metadata key of ``kind`` with its declared value, or its default."""
    return {key: meta.get(key, spec.default) for key, spec in METADATA[kind].items()}


def default_names(kind: str) -> list[str]:
    """The installed plugins of ``kind`` that declare ``default=True``, in registration order."""
    from ctbench.core.registry import default_registry

    return default_registry().defaults(kind)


def default_name(kind: str) -> str:
    """The one plugin of ``kind`` that declares ``default=True``; none or several is a
    ValueError that says how to choose."""
    from ctbench.core.registry import SINGULAR

    names = default_names(kind)
    if len(names) != 1:
        found = f"{len(names)} do ({', '.join(names)})" if names else "none does"
        raise ValueError(
            f"no default {SINGULAR[kind]}: one installed {SINGULAR[kind]} may declare "
            f"default=True and {found}; name one with --{SINGULAR[kind]}"
        )
    return names[0]


def declared_of(kind: str, name: str) -> dict[str, Any]:
    """What the plugin registered as ``name`` declares (:func:`declared` of its metadata)."""
    from ctbench.core.registry import default_registry

    return declared(kind, dict(default_registry().get(kind, name).meta))


@dataclass(frozen=True)
class Member:
    """A member the core reads on what a factory builds."""

    required: bool
    what: str


MEMBERS: dict[str, dict[str, Member]] = {
    "architectures": {
        "forward": Member(True, "model(x: float [B, H, 3, Y, X]) -> logits float [B, M]"),
        "explainable": Member(
            True, "bool: whether explainers and OrganIoU apply (False skips them)"
        ),
        "split_at": Member(
            False,
            "scopes declared: split_at(scope) -> (frozen nn.Module, features(x), rest(f)) with "
            "rest(features(x)) == model(x); the frozen part's output is cached",
        ),
        "cam_layer": Member(False, "explainable: the nn.Module whose output is the map's Z"),
        "representation_shape": Member(False, "explainable: (H', D1, D2), the map grid"),
        "cam_layout": Member(
            False,
            "explainable: 'per_slice' (cam_layer gives [B*H, F, D1, D2], the default) or "
            "'volume' ([B, F, H', D1, D2])",
        ),
        "slice_scores": Member(
            False, "MIL: slice_scores(x) -> [B, M, H], whose mean (or max) is the logits"
        ),
        "slice_aggregation": Member(
            False, "MIL: 'mean' or 'max'; a mean model's map is scaled to per-slice parts"
        ),
        "linear_head": Member(
            False,
            "linear_head() -> (W [M, F, D1, D2], b [M]) of a per-slice linear head: HiResCAM's "
            "closed form, and the mask attention of a max model",
        ),
        "head_is_affine": Member(False, "documentation: the score is affine in Z"),
        "backbone": Member(False, "trunk=True: the frozen part (its modules)"),
        "backbone_features": Member(False, "trunk=True: backbone_features(x) -> f"),
        "from_backbone_features": Member(
            False, "trunk=True: from_backbone_features(f) -> logits, equal to model(x)"
        ),
    },
    "explainers": {
        "explain": Member(
            True,
            "explain(model, x, classes=None) -> (maps float [B, K, H', D1, D2] on the model's "
            "representation grid, K = len(classes) or M; logits float [B, M] of the same "
            "forward pass). Maps are raw and signed; display post-processing is the core's. "
            "Evaluation calls it under torch.no_grad() and autocast: an explainer that needs "
            "gradients enables them itself (torch.enable_grad())",
        ),
    },
    "segmenters": {
        "__call__": Member(
            True,
            "segmenter(volume int16 HU [S, Y, X], spacing mm (S, Y, X)) -> "
            "ctbench.regions.segmentation.OrganMasks: bool right_lung, left_lung, mediastinum "
            "of the volume's shape, qc (QC), method (str); no lung at all raises NoLungError",
        ),
    },
    "downsamplers": {
        "__call__": Member(
            True,
            "downsample(mask bool [S, Y, X], representation_shape (H', D1, D2), dilate: bool) "
            "-> bool [H', D1, D2]: a cell is allowed where the organ is",
        ),
    },
    "datasets": {
        "name": Member(True, "str: the registered name"),
        "label_names": Member(True, "tuple[str, ...]: the M output labels, in order"),
        "volume_shape": Member(True, "(S, Y, X) every volume is padded or cropped to"),
        "case_ids": Member(True, "case_ids(split) -> list[str] for train, valid, test"),
        "load": Member(
            True,
            "load(case_id) -> ctbench.core.cases.Case (HU int16 [S, Y, X], spacing mm, bool labels "
            "[M], report, organ and finding masks where declared)",
        ),
        "materialise": Member(
            False,
            "materialise(progress=None) -> int: generate or fetch every case once before "
            "training (the phantom generates its cases)",
        ),
        "folder": Member(
            False, "Path: where caches of this dataset live (volumes, PARTITION regions)"
        ),
        "config": Member(
            False,
            "an object with to_json() -> dict: the dataset's settings, recorded in config.json "
            "and part of every cache key",
        ),
        "record": Member(False, "dict: what indexing found (files, splits), in config.json"),
        "problems": Member(
            False,
            "list of {case_id, error}: what indexing found wrong, listed by data check and by "
            "every run",
        ),
        "pretext_source": Member(
            False, "pretext=True: pretext_source() -> a source of other cases for the pretext"
        ),
        "shift_source": Member(
            False,
            "confounded_labels: shift_source('iid' | 'balanced') -> the same test cases with "
            "their cues agreeing as in training or by chance (metrics.json's shift)",
        ),
        "confounded_labels": Member(
            False,
            "tuple of labels this source's configuration plants a cue for (overrides the "
            "registration's confounded_labels, for datasets whose pairings are options)",
        ),
        "counterfactual": Member(
            False,
            "confounded_labels: counterfactual(case_id, label, 'cue' | 'finding') -> the case "
            "again with the label's cue toggled or its finding removed (metrics.json's shortcut)",
        ),
        "cue_present": Member(
            False, "confounded_labels: cue_present(case_id, label) -> bool, the planted cue"
        ),
        "preprocessing": Member(
            False, "VolumeDataset only (internal): the preprocessing the core applies"
        ),
        "label_agreement": Member(
            False,
            "label_agreement() -> {label: {released, labeler, both, f1, kappa}, 'all': {..., "
            "reports}}: how the released labels agree with what the labeler reads in the "
            "reports (printed by ctbench data check)",
        ),
    },
    "labelers": {
        "__call__": Member(
            True,
            "labeler(report: str) -> {label: [organs]}: the paper's output labels "
            "(ctbench.vocabulary.output_labels) the report states, in model order, each with "
            "the organs among ctbench.vocabulary.ORGANS that hold it; {} for a normal report",
        ),
        "place": Member(
            False,
            "place(report, table) -> {label: [organs]} for another label set described by "
            "labeler terms (ctbench.vocabulary.ct_rate_labels): the ct-rate and folder datasets "
            "place their labels with it; without it their labels come from the paper labels "
            "(ctbench.vocabulary.ct_rate_paper_labels)",
        ),
        "fingerprint": Member(
            False,
            "str that changes whenever the labels it gives may change (its rules, vocabulary "
            "or weights): part of the key under which PARTITION caches each case's placements; "
            "without it, the labeler's name and its distribution's version are",
        ),
    },
}
"""What the core reads on what each kind's factory builds (``tests/test_contracts.py`` checks
that the core reads no other optional member)."""


def member_names(kind: str, required: bool | None = None) -> list[str]:
    """The members of ``kind`` (only required or only optional ones when asked)."""
    return [
        name
        for name, member in MEMBERS[kind].items()
        if required is None or member.required == required
    ]


def contract_text(kind: str) -> str:
    """The contract of ``kind`` as text: the members the core reads, then the metadata a
    registration declares. The ``register_<kind>`` hook's docstring, the ``create_*``
    function's and the docs page's tables all come from here."""
    lines = ["Members the core reads on what the factory builds (* required):"]
    for name, member in MEMBERS[kind].items():
        lines.append(f"  {'*' if member.required else ' '} {name}: {member.what}")
    lines.append("Registration metadata (keyword arguments of register(name, factory, ...)):")
    for key, spec in METADATA[kind].items():
        lines.append(f"    {key} (default {spec.default!r}): {spec.changes}")
    return "\n".join(lines)


def with_contract(obj: Any, kind: str) -> None:
    """End ``obj``'s docstring (a hook, a ``create_*`` function, ``CaseSource``) with the
    contract of ``kind``, so that ``help()`` says what the core calls and reads."""
    obj.__doc__ = f"{obj.__doc__}\n\n{contract_text(kind)}\n"


def markdown_tables(kind: str) -> str:
    """The contract of ``kind`` as the two Markdown tables of its docs page
    (``python -m ctbench.core.contracts KIND`` prints them; a test keeps the page equal)."""
    rows = ["| member | required | what the core reads |", "| --- | --- | --- |"]
    for name, member in MEMBERS[kind].items():
        rows.append(f"| `{name}` | {'yes' if member.required else 'no'} | {member.what} |")
    rows += ["", "| metadata | default | what declaring it changes |", "| --- | --- | --- |"]
    for key, spec in METADATA[kind].items():
        rows.append(f"| `{key}` | `{spec.default!r}` | {spec.changes} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    print(markdown_tables(sys.argv[1]))
