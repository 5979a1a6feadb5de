"""Grad-CAM++ and LayerCAM in 3-D: two more CAM explainers to rank against HiResCAM.

Both reuse :class:`ctbench.plugins.explainers.cam.CAMExplainer` (one forward, the gradients of
every requested class score with respect to ``Z`` in one batched call) and differ only in how
gradient and activation combine, over ``Z [B, F, H', D1, D2]`` and gradients
``g [B, M, F, H', D1, D2]``:

- LayerCAM (Jiang et al. 2021): ``A_m = sum_f ReLU(g_mf) * Z_f``, element-wise: HiResCAM with
  the negative gradients dropped.
- Grad-CAM++ (Chattopadhay et al. 2018), in the closed form used by pytorch-grad-cam:
  ``alpha = g^2 / (2 g^2 + sum_cells(Z_f) * g^3)`` (0 where ``g = 0``), one weight per feature
  ``w_mf = sum_cells alpha * ReLU(g_mf)``, and ``A_m = sum_f w_mf * Z_f``; the sums run over the
  whole ``[H', D1, D2]`` volume, as Grad-CAM's mean does in 3-D.

Neither is faithful to AxialNet in HiResCAM's sense (their maps do not add up to the score), so
neither may define the mask loss of a max-aggregated model.
"""

from __future__ import annotations

import ctbench
import torch
from ctbench.plugins.explainers.cam import CAMExplainer

CELLS = (3, 4, 5)  # the [H', D1, D2] axes of a gradient [B, M, F, H', D1, D2]


class LayerCAM(CAMExplainer):
    """LayerCAM: positive gradients times activations, cell by cell."""

    name = "layercam"

    def combine(self, z: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return (grads.clamp(min=0) * z[:, None]).sum(dim=2)


class GradCAMPlusPlus(CAMExplainer):
    """Grad-CAM++: per-feature weights from second- and third-order gradient terms."""

    name = "gradcampp"

    def combine(self, z: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        squared, cubed = grads**2, grads**3
        activation_sum = z.sum(dim=(2, 3, 4), keepdim=True)[:, None]  # [B, 1, F, 1, 1, 1]
        denominator = 2 * squared + activation_sum * cubed
        alpha = torch.where(
            grads != 0, squared / torch.where(denominator != 0, denominator, 1.0), 0.0
        )
        weights = (alpha * grads.clamp(min=0)).sum(dim=CELLS, keepdim=True)
        return (weights * z[:, None]).sum(dim=2)


@ctbench.hookimpl
def register_explainers(register):
    register(
        "layercam",
        LayerCAM,
        faithful=False,
        differentiable=True,
        description="LayerCAM (3-D): positive gradient x activation per cell",
    )
    register(
        "gradcampp",
        GradCAMPlusPlus,
        faithful=False,
        differentiable=True,
        description="Grad-CAM++ (3-D): higher-order gradient weights per feature",
    )
