"""Channels-last memory format for models that mix 2-D and 3-D convolutions.

``model.to(memory_format=torch.channels_last)`` raises on 5-D weights (Conv3d), so models like
BodyConv or 3DConv need each weight converted by its rank: channels_last for 4-D tensors,
channels_last_3d for 5-D ones. Values are unchanged; only the strides differ.
"""

from __future__ import annotations

import torch
from torch import nn

_FORMAT_BY_RANK = {4: torch.channels_last, 5: torch.channels_last_3d}


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert every 4-D / 5-D parameter and buffer of ``model`` in place; returns ``model``."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            memory_format = _FORMAT_BY_RANK.get(tensor.dim())
            if memory_format is not None:
                tensor.data = tensor.data.contiguous(memory_format=memory_format)
    return model
