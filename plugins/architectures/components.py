"""Building blocks shared by the architecture plugins (paper Table 1; the paper's reference code).

- :func:`resnet18_features`: torchvision's ResNet-18 without avgpool and fc, optionally with
  ImageNet weights from a local file or the torch hub cache. Nothing is ever downloaded.
- :func:`scaled_step`: the one rule that derives kernel sizes and strides from the input shape.
- :class:`SliceTrunk`: ResNet-18 (and the custom convolutions of appendix 7.5) applied to
  every slice group, the trunk of the AxialNet family, BodyConv and CTNet.
- :func:`check_input`, :func:`mlp_head`, :func:`refuse_pretrained`: small shared pieces.

The scaling rule
----------------
The paper's layers were sized for 135 slice groups of 420 x 420 pixels. At smaller inputs
(for example the phantom's 16 x 3 x 128 x 128) the same layers would shrink the representation
to nothing. Rule: each reducing layer keeps the paper's kernel and stride along an axis when
the result along that axis is still at least ``min(size, floor)`` cells, where ``floor`` is the
paper's final size of that family (6 for the AxialNet family's 6 x 6 grid, 5 for the 3-D
models' 5 x 5 x 5 grid) and ``size`` is the axis length entering the layer; otherwise that
layer uses kernel 1 and stride 1 along that axis. Paddings stay 0 as in the paper. At the
paper's shape every layer keeps its paper values, so the parameter counts are the paper's.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import torch
from ctbench.runtime.checkpoints import safe_torch_load
from torch import nn

AXIALNET_FLOOR = 6
"""Final in-plane grid of the AxialNet family at the paper's shape (6 x 6)."""

VOLUME_FLOOR = 5
"""Final grid of BodyConv, 3DConv and CTNet along each axis at the paper's shape (5 x 5 x 5)."""

RESNET_CHANNELS = 512


OFFLINE_VARIABLE = "CTBENCH_OFFLINE"
"""Set (to anything but empty) to forbid downloads, as HF_HUB_OFFLINE does; the tests set it."""


class PretrainedWeightsNotFoundError(FileNotFoundError):
    """ImageNet weights were asked for, are not in the torch hub cache and could not be
    downloaded (offline, or downloads forbidden by CTBENCH_OFFLINE)."""


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Length of a valid (unpadded) convolution's output along one axis."""
    return (size - kernel) // stride + 1


def scaled_step(size: int, kernel: int, stride: int, floor: int) -> tuple[int, int]:
    """The paper's ``(kernel, stride)`` on one axis if it leaves ``min(size, floor)`` cells.

    Otherwise ``(1, 1)``: the layer keeps that axis as it is (see the module docstring).
    """
    if size >= kernel and conv_output_size(size, kernel, stride) >= min(size, floor):
        return kernel, stride
    return 1, 1


def scaled_conv3d(
    in_channels: int,
    out_channels: int,
    sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    floor: int,
) -> tuple[nn.Conv3d, tuple[int, int, int]]:
    """A valid Conv3d, kernel and stride scaled per axis; returns it and its output sizes."""
    steps = [scaled_step(n, k, s, floor) for n, k, s in zip(sizes, kernel, stride, strict=True)]
    kernels = tuple(k for k, _ in steps)
    strides = tuple(s for _, s in steps)
    out = tuple(conv_output_size(n, k, s) for n, (k, s) in zip(sizes, steps, strict=True))
    return nn.Conv3d(in_channels, out_channels, kernels, strides), out  # type: ignore[return-value]


def resnet_grid(side: int, layer: int = 4) -> int:
    """In-plane size of ResNet-18's ``layer`` output (1 to 4) for a ``side`` x ``side`` input."""
    side = conv_output_size(side + 2 * 3, 7, 2)  # conv1: 7x7, stride 2, padding 3
    side = conv_output_size(side + 2 * 1, 3, 2)  # maxpool: 3x3, stride 2, padding 1
    for _ in range(layer - 1):  # layer2..layer4 each start with a 3x3 stride-2 conv, padding 1
        side = conv_output_size(side + 2 * 1, 3, 2)
    return side


def imagenet_weights_cache_path() -> Path:
    """Where torchvision would cache ResNet-18's ImageNet weights (``$TORCH_HOME/hub/...``)."""
    from torchvision.models import ResNet18_Weights

    filename = ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _missing_weights_message(reason: str) -> str:
    from torchvision.models import ResNet18_Weights

    url = ResNet18_Weights.IMAGENET1K_V1.url
    return (
        "ImageNet weights for ResNet-18 were asked for (pretrained=True) and are not in the torch "
        f"hub cache ({imagenet_weights_cache_path()}); {reason}. On a machine with internet "
        'access run `python -c "import torchvision; '
        "torchvision.models.resnet18(weights='DEFAULT')\"` (or fetch "
        f"{url}) and copy the file to that cache path, or pass weights=PATH (CLI: --weights "
        "PATH). Or train from scratch with pretrained=False (CLI: --no-pretrained)."
    )


def imagenet_state_dict(progress: bool = True) -> dict[str, torch.Tensor]:
    """ResNet-18's ImageNet weights the way torchvision gives them: from the torch hub cache,
    downloaded there first by torchvision's weights API when missing (hash checked, loaded
    with ``weights_only``). Offline, or with CTBENCH_OFFLINE set, one error says where to put
    the file; nothing falls back to random weights."""
    import os

    from torchvision.models import ResNet18_Weights

    path = imagenet_weights_cache_path()
    if not path.is_file():
        if os.environ.get(OFFLINE_VARIABLE):
            raise PretrainedWeightsNotFoundError(
                _missing_weights_message(f"{OFFLINE_VARIABLE} is set, so ctbench does not download")
            )
        try:
            ResNet18_Weights.IMAGENET1K_V1.get_state_dict(
                progress=progress, check_hash=True, weights_only=True
            )
        except (
            OSError,
            RuntimeError,
        ) as error:  # URLError is an OSError; a bad hash a RuntimeError
            reason = f"downloading them failed ({type(error).__name__}: {error})"
            raise PretrainedWeightsNotFoundError(_missing_weights_message(reason)) from error
    return load_resnet18_state_dict(path)


def load_resnet18_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a torchvision ResNet-18 state dict safely; errors name the file and the problem."""
    if not path.exists():
        raise PretrainedWeightsNotFoundError(f"{path}: weights file does not exist")
    if not path.is_file():
        raise PretrainedWeightsNotFoundError(f"{path}: not a regular file (a weights file?)")
    state = safe_torch_load(path, "PyTorch weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a torchvision ResNet-18 state dict (name -> tensor)")
    return state


def resnet18_features(pretrained: bool = False, weights: str | Path | None = None) -> nn.Sequential:
    """ResNet-18 up to layer4: ``[N, 3, Y, X] -> [N, 512, Y/32, X/32]`` (11,176,512 parameters).

    ``weights`` (a torchvision ResNet-18 state dict file) implies ``pretrained``; with
    ``pretrained`` and no file, torchvision's ImageNet weights (:func:`imagenet_state_dict`).
    """
    from torchvision.models import resnet18

    network = resnet18(weights=None)
    if weights is not None or pretrained:
        path = Path(weights) if weights is not None else imagenet_weights_cache_path()
        state = load_resnet18_state_dict(path) if weights is not None else imagenet_state_dict()
        try:
            network.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"{path}: not a torchvision ResNet-18 state dict: {error}") from error
    return nn.Sequential(*list(network.children())[:-2])


def refuse_pretrained(name: str, options: dict) -> None:
    """For models the paper trains from scratch: asking for weights is an error, not ignored."""
    if options.pop("pretrained", False) or options.pop("weights", None) is not None:
        raise ValueError(
            f"{name} never loads pretrained weights (the paper trains it from scratch)"
        )


def full_precision(x: torch.Tensor):
    """Autocast off on ``x``'s device: models compute their scoring layers in fp32 (on
    ``x.float()``) under ``--precision bf16|fp16``. bf16 keeps 8 significant bits, so its
    logits tie (half of 64 random cases' logits for one label did) and AUROC, a rank statistic,
    would count ties; the scoring layers cost nothing next to the backbone. Under fp32 this
    changes nothing."""
    return torch.autocast(x.device.type, enabled=False)


def check_input(x: torch.Tensor, input_shape: tuple[int, int, int, int], name: str) -> None:
    """One clear error when a batch does not have the shape the model was built for."""
    if x.dim() != 5 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"{name} was built for x of shape [B, {', '.join(map(str, input_shape))}] "
            f"([B, H, 3, Y, X]); got {list(x.shape)}"
        )


def mlp_head(in_features: int, n_classes: int, dropout: float) -> nn.Sequential:
    """The CT-Net family's classifier: in -> 128 -> 96 -> M with ReLU and dropout."""
    return nn.Sequential(
        nn.Linear(in_features, 128),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(128, 96),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(96, n_classes),
    )


CUSTOM_CONV_CHANNELS = (RESNET_CHANNELS, 64, 32, 16, 16)


def custom_conv_layers(grid: tuple[int, int]) -> tuple[nn.Sequential, tuple[int, int]]:
    """Appendix 7.5's custom convolutions scaled to ``grid``; returns them and the output grid."""
    layers: list[nn.Module] = []
    for in_channels, out_channels in pairwise(CUSTOM_CONV_CHANNELS):
        kernel = tuple(scaled_step(n, 3, 1, AXIALNET_FLOOR)[0] for n in grid)
        conv = nn.Conv2d(in_channels, out_channels, kernel)
        # He initialisation, zero bias: PyTorch's default leaves 13 of 16 final channels dead at
        # the phantom's 4 x 4 grid (docs/learning-investigation.md); the reference keeps the default
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.ReLU()]
        grid = tuple(conv_output_size(n, k, 1) for n, k in zip(grid, kernel, strict=True))
    return nn.Sequential(*layers), grid  # type: ignore[return-value]


class SliceTrunk(nn.Module):
    """ResNet-18 (+ custom convs) per slice group: ``[B, H, 3, Y, X] -> [B*H, F, D1, D2]`` as
    ``from_backbone(backbone_features(x))``, the split the head warm-up uses."""

    def __init__(
        self,
        input_shape: tuple[int, int, int, int],
        *,
        custom_convs: bool,
        pretrained: bool,
        weights: str | Path | None,
    ) -> None:
        super().__init__()
        _, channels, height, width = input_shape
        if channels != 3:
            raise ValueError(
                f"ResNet-18 slice models take 3-slice groups; input_shape {input_shape}"
            )
        self.resnet = resnet18_features(pretrained, weights)
        grid = (resnet_grid(height), resnet_grid(width))
        self.custom_convs: nn.Sequential | None = None
        self.out_channels = RESNET_CHANNELS
        if custom_convs:
            self.custom_convs, grid = custom_conv_layers(grid)
            self.out_channels = CUSTOM_CONV_CHANNELS[-1]
        self.grid = grid

    @property
    def last_layer(self) -> nn.Module:
        """The module whose output is the representation (the CAM layer)."""
        return self.custom_convs[-1] if self.custom_convs is not None else self.resnet[-1]

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """ResNet-18's output per slice group: ``[B, H, 3, Y, X] -> [B, H, 512, G, G]``."""
        return self.resnet(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def from_backbone(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, H, 512, G, G] -> [B*H, F, D1, D2]``: the custom convolutions, when present."""
        z = features.flatten(0, 1)
        return self.custom_convs(z) if self.custom_convs is not None else z


class SliceBackboneModel(nn.Module):
    """A model on :class:`SliceTrunk` whose pretrained part can be frozen and cached.

    ``backbone`` is what a pretrained start loads (ResNet-18); ``backbone_features(x)`` is its
    output and ``from_backbone_features(f)`` the rest of the model, so that
    ``forward(x) == from_backbone_features(backbone_features(x))``. The trainer's head warm-up
    (``ctbench.train.training``) computes the backbone's output once and trains the rest on it.
    Subclasses set ``self.trunk`` and ``self.input_shape`` and define ``from_backbone_features``.
    """

    trunk: SliceTrunk
    input_shape: tuple[int, int, int, int]

    @property
    def backbone(self) -> nn.Module:
        return self.trunk.resnet

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, 3, Y, X] -> [B, H, 512, G, G]``."""
        check_input(x, self.input_shape, type(self).__name__)
        return self.trunk.backbone_features(x)

    def from_backbone_features(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_backbone_features(self.backbone_features(x))

    def split_at(self, scope: str):
        """``(frozen module, features(x), rest(f))`` with ``rest(features(x)) == model(x)``:
        ``head`` freezes ResNet-18 (:attr:`backbone`), ``layer4`` the layers up to layer3, so
        that layer4 and everything after it train (``--finetune``)."""
        if scope == "head":
            return self.backbone, self.backbone_features, self.from_backbone_features
        if scope != "layer4":
            raise ValueError(f"no split at {scope!r}: head or layer4")
        stem, layer4 = self.trunk.resnet[:-1], self.trunk.resnet[-1]

        def features(x: torch.Tensor) -> torch.Tensor:  # [B, H, 256, Y/16, X/16]
            check_input(x, self.input_shape, type(self).__name__)
            return stem(x.flatten(0, 1)).unflatten(0, x.shape[:2])

        def rest(f: torch.Tensor) -> torch.Tensor:
            return self.from_backbone_features(layer4(f.flatten(0, 1)).unflatten(0, f.shape[:2]))

        return stem, features, rest
