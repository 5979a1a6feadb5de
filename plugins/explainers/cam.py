"""HiResCAM and Grad-CAM for 3-D CT models (paper sections 3.3-3.5 and appendix 7.3).

Both read the representation ``Z`` at ``model.cam_layer`` and the gradient of each class score
``s_m`` (the logit, before the sigmoid) with respect to it, in one forward pass:

- HiResCAM: ``A_m = sum_f dS_m/dZ_f * Z_f`` (element-wise, then summed over features).
- Grad-CAM: ``A_m = sum_f alpha_mf * Z_f`` with ``alpha_mf`` the gradient averaged over the
  whole ``[H', D1, D2]`` volume (the 3-D extension of section 3.5.1).

Gradients stop at ``Z`` (the CAM layer's output becomes a leaf), so the backward pass covers
only the model's head, and all requested classes are taken in one vectorised call
(``is_grads_batched``) where autograd allows it. For models whose head is one linear map per
slice followed by the mean (the AxialNet family), HiResCAM has a closed form,
``A_m = sum_f (W_m / H) * Z``: no backward at all, differentiable, chosen automatically.
Maps of 3-D models are resampled onto the input's slice groups. Output: raw, signed
``[B, M, H, D1, D2]``; display post-processing is ``ctbench.explain.explanations.relu_minmax``.
"""

from __future__ import annotations

from collections.abc import Sequence

import ctbench
import torch
from ctbench.explain.explanations import (
    as_volume_layout,
    capture_cam_layer,
    check_explainable,
    per_slice_contributions,
    resample_to_slices,
)
from torch import nn


def _class_index(classes: Sequence[int] | torch.Tensor | None, n_classes: int) -> torch.Tensor:
    if classes is None:
        return torch.arange(n_classes)
    index = torch.as_tensor(classes, dtype=torch.long).flatten()
    if len(index) == 0 or int(index.min()) < 0 or int(index.max()) >= n_classes:
        raise IndexError(f"classes {index.tolist()} out of range for {n_classes} outputs")
    return index


def has_closed_form(model: nn.Module) -> bool:
    """True for models whose score is the mean over slices of one linear map per slice."""
    return (
        getattr(model, "slice_aggregation", None) == "mean"
        and hasattr(model, "linear_head")
        and getattr(model, "cam_layout", "per_slice") == "per_slice"
    )


class CAMExplainer:
    """One forward with the CAM layer captured; gradients of the chosen scores w.r.t. it.

    ``create_graph=True`` keeps the maps differentiable with respect to the model's parameters
    (the mask loss trains through them); otherwise gradients stop at the CAM layer.
    """

    name = "cam"

    def __init__(self, *, create_graph: bool = False) -> None:
        self.create_graph = create_graph

    def __call__(
        self, model: nn.Module, x: torch.Tensor, classes: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Raw signed maps ``[B, len(classes) or M, H, D1, D2]``."""
        return self.explain(model, x, classes)[0]

    def explain(
        self, model: nn.Module, x: torch.Tensor, classes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(maps, logits)`` from the same forward pass."""
        check_explainable(model)
        z, grads, logits = self._activations_and_gradients(model, x, classes)
        maps = self.combine(z, grads)  # [B, M', H', D1, D2]
        return resample_to_slices(maps, x.shape[1]), logits

    def combine(self, z: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """``z [B, F, H', D1, D2]``, ``grads [B, M', F, H', D1, D2]`` -> ``[B, M', H', D1, D2]``."""
        raise NotImplementedError

    def _activations_and_gradients(self, model, x, classes):
        batch = x.shape[0]
        # Gradients are needed even when the caller runs under torch.no_grad (evaluation).
        with torch.enable_grad():
            with capture_cam_layer(model, detach=not self.create_graph) as got:
                logits = model(x)
            raw = got[0]
            index = _class_index(classes, logits.shape[1])
            scores = logits[:, index.to(logits.device)]  # [B, M']
            grads = _batched_gradients(scores, raw, self.create_graph)  # [M', *raw.shape]
        # combined in fp32 whatever autocast computed Z and its gradients in
        z = as_volume_layout(raw, model, batch).float()  # [B, F, H', D1, D2]
        grads = torch.stack([as_volume_layout(g, model, batch) for g in grads], dim=1).float()
        if not self.create_graph:
            z, logits = z.detach(), logits.detach()
        return z, grads, logits


def _batched_gradients(scores: torch.Tensor, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """``d scores[:, m] / d z`` for every m, summed over the batch (samples are independent).

    One vectorised backward (``is_grads_batched``). There is deliberately no fallback to one
    backward per class: an error here (out of memory, an op autograd cannot batch) is raised,
    never turned into a silently slower path.
    """
    n = scores.shape[1]
    one_hot = torch.eye(n, dtype=scores.dtype, device=scores.device)
    grad_outputs = one_hot[:, None, :].expand(n, *scores.shape)  # [M', B, M']
    (grads,) = torch.autograd.grad(
        scores,
        z,
        grad_outputs=grad_outputs,
        is_grads_batched=True,
        retain_graph=True,
        create_graph=create_graph,
    )
    return grads


class HiResCAM(CAMExplainer):
    """HiResCAM: gradient times activation, summed over features; faithful for AxialNet."""

    name = "hirescam"

    def __init__(self, *, closed_form: bool | None = None, create_graph: bool = False) -> None:
        """``closed_form=None`` uses it when the model allows, ``False`` forces autograd."""
        super().__init__(create_graph=create_graph)
        self.closed_form = closed_form

    def explain(self, model, x, classes=None):
        check_explainable(model)
        use_closed_form = has_closed_form(model) if self.closed_form is None else self.closed_form
        if use_closed_form:
            if not has_closed_form(model):
                raise ValueError(
                    f"{type(model).__name__} has no closed-form HiResCAM "
                    "(needs linear_head(), slice_aggregation 'mean', per-slice CAM layout)"
                )
            return closed_form_hirescam(model, x, classes)
        return super().explain(model, x, classes)

    def combine(self, z, grads):
        return (grads * z[:, None]).sum(dim=2)


class GradCAM(CAMExplainer):
    """Grad-CAM: one weight per feature (the gradient averaged over the volume)."""

    name = "gradcam"

    def combine(self, z, grads):
        alpha = grads.mean(dim=(3, 4, 5), keepdim=True)  # [B, M', F, 1, 1, 1]
        return (alpha * z[:, None]).sum(dim=2)


def closed_form_hirescam(
    model: nn.Module, x: torch.Tensor, classes: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``A_m = sum_f (W_m / H) * Z`` for all classes at once; differentiable; ``(maps, logits)``.

    For ``s_m = mean_h(<W_m, z_h>) + b_m`` the gradient of ``s_m`` w.r.t. ``z_h`` is ``W_m / H``
    for every slice, so HiResCAM needs no backward pass (paper section 3.4).
    """
    index = _class_index(classes, model.linear_head()[0].shape[0])
    contributions, logits = per_slice_contributions(model, x, index)  # <W_m, z_h> per cell
    return contributions / x.shape[1], logits


@ctbench.hookimpl
def register_explainers(register):
    register(
        "hirescam",
        HiResCAM,
        default=True,  # a run scores hirescam and gradcam when no --explainer is named
        paper_name="HiResCAM",
        faithful=True,
        differentiable=True,
        description="HiResCAM: gradient x activation per cell; closed form for AxialNet",
    )
    register(
        "gradcam",
        GradCAM,
        default=True,
        paper_name="Grad-CAM",
        faithful=False,
        differentiable=True,
        description="Grad-CAM (3-D): gradients averaged over the volume weight each feature",
    )
