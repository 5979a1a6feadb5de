"""The public lookup API (docs/plugins/README.md): build any registered plugin by name.

Each function looks the name up in :func:`ctbench.core.registry.default_registry`; an unknown name
raises :class:`ctbench.core.registry.UnknownPluginError` listing the known names.
"""

from __future__ import annotations

from typing import Any

from ctbench.core import paper
from ctbench.core.contracts import with_contract
from ctbench.core.registry import default_registry

MAX_INPUT_VALUES = 1 << 30
"""The most values one model input ``H x C x Y x X`` may hold (the paper's is 135 x 3 x 420 x
420 = 7.1e7): a typo such as 100000,3,100000,100000 is refused before a layer sized from it
asks for terabytes."""


def _input_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 4 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(
            f"input_shape must be four positive ints (H, C, Y, X), e.g. {paper.INPUT_SHAPE}; "
            f"got {input_shape!r}"
        )
    values = shape[0] * shape[1] * shape[2] * shape[3]
    if values > MAX_INPUT_VALUES:
        raise ValueError(
            f"input_shape {shape} holds {values:,} values per volume, more than ctbench builds "
            f"models for ({MAX_INPUT_VALUES:,}); the paper's is {paper.INPUT_SHAPE}"
        )
    return shape  # type: ignore[return-value]


def create_model(
    name: str, n_classes: int, input_shape: tuple[int, int, int, int], **options: Any
) -> Any:
    """Build architecture ``name`` for ``n_classes`` outputs and inputs ``[B, *input_shape]``.

    ``options`` go to the factory (for example ``pretrained=True``, ``weights=PATH``).
    """
    if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive int, got {n_classes!r}")
    shape = _input_shape(input_shape)
    entry = default_registry().get("architectures", name)
    model = entry.factory(n_classes, shape, **options)

    import torch  # deferred: `ctbench --help` and the registry never import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"architecture {entry.name!r} from {entry.provider!r} returned "
            f"{type(model).__name__}, not a torch.nn.Module"
        )
    return model


def create_explainer(name: str, **options: Any) -> Any:
    """Build explainer ``name``: an object whose ``explain(model, x, classes=None)`` returns
    ``(maps [B, K, H', D1, D2], logits [B, M])`` (``ctbench.core.contracts``; ``create_graph=True``
    for one that declares ``differentiable``)."""
    return default_registry().create("explainers", name, **options)


def create_segmenter(name: str, *, device: Any = None, **options: Any) -> Any:
    """Build organ segmenter ``name``: a callable ``segmenter(volume_hu, spacing_mm)``.

    ``device`` (``"cuda"``, a ``torch.device``): where it computes, for segmenters registered
    with ``on_device=True``; the others compute on the CPU (see :func:`_on_device`).
    """
    return _on_device("segmenters", name, device, options)


def create_downsampler(name: str, *, device: Any = None, **options: Any) -> Any:
    """Build mask downsampler ``name``: ``downsample(mask, representation_shape, dilate)``;
    ``device`` as for :func:`create_segmenter`."""
    return _on_device("downsamplers", name, device, options)


def _on_device(kind: str, name: str, device: Any, options: dict[str, Any]) -> Any:
    """A plugin that declares ``on_device`` in its registration takes ``device=`` (a string);
    one that does not computes on the CPU whatever the run's device: PARTITION's masks are
    made once per case and cached, off the model's path, so nothing else changes."""
    entry = default_registry().get(kind, name)
    if device is not None and str(device) != "cpu" and entry.meta.get("on_device"):
        options = {**options, "device": str(device)}
    return default_registry().create(kind, name, **options)


def create_dataset(name: str, **options: Any) -> Any:
    """Build dataset ``name`` with its options (for example ``preset='tiny'``)."""
    return default_registry().create("datasets", name, **options)


def create_labeler(name: str | None = None, **options: Any) -> Any:
    """Build report labeler ``name`` (default: the one that declares ``default=True``):
    ``labeler(report) -> {label: organs}`` over the paper's output labels."""
    from ctbench.core.contracts import default_name

    return default_registry().create("labelers", name or default_name("labelers"), **options)


def list_plugins() -> dict[str, list[str]]:
    """``{kind: [registered names]}`` for the six plugin kinds."""
    return default_registry().list_plugins()


for _function, _kind in (  # each docstring ends with its kind's contract, as the hooks' do
    (create_model, "architectures"),
    (create_explainer, "explainers"),
    (create_segmenter, "segmenters"),
    (create_downsampler, "downsamplers"),
    (create_dataset, "datasets"),
    (create_labeler, "labelers"),
):
    with_contract(_function, _kind)
