"""``example-gradact``: gradient times activation at the CAM layer (docs/plugins/explainers.md).

``explain(model, x, classes=None)`` returns ``(maps [B, K, H', D1, D2], logits [B, M])`` from one
forward pass: for each chosen class, the gradient of its score with respect to the CAM layer's
output ``Z``, times ``Z``, summed over features. On a model whose score is linear in ``Z`` the map
sums to the score less the bias (so it declares ``faithful=True``), and with
``create_graph=True`` the maps stay differentiable (``differentiable=True``: it can drive the
mask loss). ctbench calls ``explain`` under ``torch.no_grad()`` (evaluation needs no graph), so
an explainer that needs gradients turns them on itself.
"""

from __future__ import annotations

import torch
from ctbench.plugin import hookimpl


class GradientTimesActivation:
    def __init__(self, *, create_graph: bool = False) -> None:
        self.create_graph = create_graph

    def explain(self, model, x, classes=None):
        with torch.enable_grad():  # ctbench calls explain under torch.no_grad()
            return self._explain(model, x, classes)

    def _explain(self, model, x, classes):
        captured = []
        handle = model.cam_layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            logits = model(x)
        finally:
            handle.remove()
        z = captured[0]
        if getattr(model, "cam_layout", "per_slice") == "per_slice":  # [B*H, F, D1, D2]
            z_volume = z.view(len(x), -1, *z.shape[1:]).transpose(1, 2)  # [B, F, H, D1, D2]
        else:
            z_volume = z
        chosen = range(logits.shape[1]) if classes is None else list(classes)
        maps = []
        for m in chosen:
            (grad,) = torch.autograd.grad(
                logits[:, m].sum(), z, retain_graph=True, create_graph=self.create_graph
            )
            if grad.shape != z_volume.shape:
                grad = grad.view(len(x), -1, *grad.shape[1:]).transpose(1, 2)
            maps.append((grad * z_volume).sum(dim=1))  # [B, H', D1, D2]
        maps = torch.stack(maps, dim=1)
        return (maps if self.create_graph else maps.detach()), logits.detach()

    def __call__(self, model, x, classes=None):
        return self.explain(model, x, classes)[0]


@hookimpl
def register_explainers(register):
    register(
        "example-gradact",
        GradientTimesActivation,
        description="Example plugin: gradient x activation at the CAM layer",
        faithful=True,
        differentiable=True,
    )
