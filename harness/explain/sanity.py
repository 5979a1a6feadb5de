"""Sanity checks for explanations (Adebayo et al. 2018), judged as Arun et al. (2021) judge them.

A map that explains the model must change when the model's parameters are randomised. Three
tests compare each explainer's maps of the trained model with its maps of a changed model, on
the same volumes and labels:

- **cascading randomisation**: blocks of parameters are re-initialised one after another,
  bottom-up (from the input, the default) or top-down (from the output, as Adebayo et al.),
  each step keeping the earlier ones random;
- **independent randomisation**: one block at a time, the others trained;
- **permuted labels**: a model trained by the same recipe on labels permuted across cases
  (``ctbench sanity`` trains it in the run folder).

Similarity of two maps of one (volume, label) pair: Spearman rank correlation of the raw signed
maps and of their absolute values, and 3-D SSIM of the maps scaled to [0, 1] by their largest
absolute value. The pass line is the similarity of *random pairs* of maps of the trained model
(the same label on two different volumes): an explainer passes a test when the mean similarity
after randomisation is below that baseline on all three measures. A map that does not depend on
the model (an edge detector on the input) stays identical and fails.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from ctbench.evaluate.bootstrap import bootstrap_mean
from torch import nn

MEASURES = ("spearman", "spearman_abs", "ssim")


def parameter_blocks(model: nn.Module, depth: int = 3) -> list[str]:
    """The model's blocks of parameters in registration (forward) order: modules that own
    parameters, taken at ``depth`` levels of nesting at most (ResNet's stem and its four
    stages, each custom conv, the head)."""
    blocks: list[str] = []

    def walk(module: nn.Module, prefix: str, level: int) -> None:
        for name, child in module.named_children():
            if not any(True for _ in child.parameters()):
                continue
            full = f"{prefix}{name}"
            has_parametric_children = any(
                any(True for _ in grandchild.parameters()) for grandchild in child.children()
            )
            if level + 1 >= depth or not has_parametric_children:
                blocks.append(full)
            else:
                walk(child, full + ".", level + 1)

    walk(model, "", 0)
    return blocks


def randomised(model: nn.Module, blocks: list[str], seed: int = 0) -> nn.Module:
    """A copy of ``model`` with ``blocks`` re-initialised (each module's ``reset_parameters``,
    batch-norm statistics included), seeded."""
    copy_ = copy.deepcopy(model)
    modules = dict(copy_.named_modules())
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for name in blocks:
            for module in modules[name].modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    finally:
        torch.random.set_rng_state(generator_state)
    return copy_.eval()


def _ranks(values: torch.Tensor) -> torch.Tensor:
    ordered = values.sort(dim=-1).values
    low = torch.searchsorted(ordered, values, right=False)
    high = torch.searchsorted(ordered, values, right=True)
    return (low + high - 1).double() / 2  # 0-based, ties averaged


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]``: Spearman correlation of each pair of maps ``[N, M, *grid]``; NaN when a map
    is constant (a correlation is undefined)."""
    ra, rb = _ranks(a.flatten(2).double()), _ranks(b.flatten(2).double())
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    denominator = (ra.square().sum(-1) * rb.square().sum(-1)).sqrt()
    return torch.where(
        denominator > 0, (ra * rb).sum(-1) / denominator.clamp(min=1e-300), torch.nan
    )


def scaled(maps: torch.Tensor) -> torch.Tensor:
    """Each map's absolute value divided by its largest (all-zero maps stay zero)."""
    magnitude = maps.abs().double()
    peak = magnitude.flatten(2).amax(-1)
    return magnitude / torch.where(peak > 0, peak, 1.0).reshape(*peak.shape, 1, 1, 1)


def ssim3d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]``: 3-D SSIM of each pair of maps scaled to [0, 1] (:func:`scaled`), with a
    uniform window of the largest odd size up to 7 that fits the grid, or the whole grid when
    an axis is shorter than 3 (as on the tiny preset's 9 x 2 x 2)."""
    x, y = scaled(a), scaled(b)
    n, m, *grid = x.shape
    x, y = x.reshape(n * m, 1, *grid), y.reshape(n * m, 1, *grid)
    size = min(7, *grid)
    size -= 1 - size % 2
    c1, c2 = 0.01**2, 0.03**2
    if size >= 3:
        mean = lambda t: F.avg_pool3d(t, size, stride=1)  # noqa: E731
    else:
        mean = lambda t: t.mean(dim=(2, 3, 4), keepdim=True)  # noqa: E731
    mx, my = mean(x), mean(y)
    vx, vy, cxy = mean(x * x) - mx**2, mean(y * y) - my**2, mean(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return index.mean(dim=(1, 2, 3, 4)).reshape(n, m)


def similarities(a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three measures of each pair: ``{measure: [N, M]}``."""
    return {
        "spearman": spearman(a, b),
        "spearman_abs": spearman(a.abs(), b.abs()),
        "ssim": ssim3d(a, b),
    }


def random_pair_baseline(maps: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Similarity of each map with the same label's map on another volume (a seeded
    derangement of the volumes): the pass line."""
    n = maps.shape[0]
    if n < 2:
        raise ValueError("the random-pair baseline needs at least two volumes")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    partner = np.roll(order, 1)[np.argsort(order)]  # a cycle: nobody is their own partner
    return similarities(maps, maps[torch.from_numpy(partner)])


Explain = Callable[[nn.Module], torch.Tensor]
"""``explain(model) -> maps [N, M, *grid]`` of one explainer on the chosen volumes."""


def summary(values: dict[str, torch.Tensor], seed: int) -> dict[str, dict]:
    return {k: bootstrap_mean(v.numpy(), seed=seed).to_json() for k, v in values.items()}


def verdict(test: dict[str, dict], baseline: dict[str, dict]) -> bool:
    """Pass: the mean similarity is below the random-pair baseline's on every measure."""
    return all(test[k]["mean"] < baseline[k]["mean"] for k in MEASURES)


def randomisation_tests(
    model: nn.Module,
    explain: Explain,
    *,
    order: str = "bottom-up",
    seed: int = 0,
    trained: torch.Tensor | None = None,
) -> dict:
    """Cascading and independent randomisation of one explainer (module docstring);
    ``trained``: the trained model's maps, when the caller has them already."""
    if order not in ("bottom-up", "top-down"):
        raise ValueError(f"order must be bottom-up or top-down, got {order!r}")
    blocks = parameter_blocks(model)
    sequence = blocks if order == "bottom-up" else blocks[::-1]
    trained = explain(model) if trained is None else trained
    baseline = summary(random_pair_baseline(trained, seed), seed)
    cascading = []
    for step in range(1, len(sequence) + 1):
        changed = randomised(model, sequence[:step], seed)
        cascading.append(
            {
                "randomised": sequence[step - 1],
                **summary(similarities(trained, explain(changed)), seed),
            }
        )
    independent = [
        {
            "randomised": block,
            **summary(similarities(trained, explain(randomised(model, [block], seed))), seed),
        }
        for block in blocks
    ]
    final = {k: cascading[-1][k] for k in MEASURES}
    return {
        "order": order,
        "blocks": blocks,
        "baseline": baseline,
        "cascading": cascading,
        "independent": independent,
        "passed": verdict(final, baseline),
    }


class PermutedLabels:
    """A case source whose label vectors are permuted across the cases of each split (a
    seeded permutation): the data-randomisation test's training data. Everything else (the
    volumes, the splits, the pretext pool) is the wrapped source's; caches are keyed apart."""

    def __init__(self, source, seed: int = 0) -> None:
        self.source, self.seed = source, seed
        self._donor: dict[str, str] = {}
        for split in ("train", "valid", "test"):
            ids = source.case_ids(split)
            order = np.random.default_rng([seed, len(ids)]).permutation(len(ids))
            self._donor |= {case_id: ids[k] for case_id, k in zip(ids, order, strict=True)}
        self._labels: dict[str, np.ndarray] = {}

    @property
    def config(self):
        from ctbench.core.cases import SourceConfig, source_config

        return SourceConfig({**source_config(self.source), "permuted_labels_seed": self.seed})

    def load(self, case_id: str):
        case = self.source.load(case_id)
        self._labels.setdefault(case_id, case.labels)  # its own labels, for its recipient
        donor = self._donor[case_id]
        if donor not in self._labels:  # not loaded yet: decoded once for its labels
            self._labels[donor] = self.source.load(donor).labels
        case.labels = self._labels[donor]
        return case

    def __getattr__(self, name: str):  # name, label_names, case_ids, folder, materialise, ...
        if name.startswith("__") or name == "source":  # unpickling: no source yet
            raise AttributeError(name)
        return getattr(self.source, name)
