"""``example-spheres`` and ``example-spheres-nomasks``: a handful of generated chest volumes
(docs/plugins/datasets.md).

A dataset plugin returns a source with ``name``, ``label_names``, ``volume_shape``,
``case_ids(split)`` and ``load(case_id) -> ctbench.core.cases.Case``. Each case here is an elliptic
body (40 HU) in air holding two lungs (-850 HU); a case with a nodule has a 10 mm sphere of
soft tissue in one lung, a case with an effusion a layer of fluid at the back of the right
lung. The cases say where each finding lies (``Case.located``), so PARTITION needs no report
labeler, and ``example-spheres`` also hands over each finding's voxel mask (it registers
``finding_masks=True``: runs score the pointing game and lesion IoU).
"""

from __future__ import annotations

import numpy as np
from ctbench.plugin import Case, Finding, hookimpl

LABELS = ("lung_nodule", "lung_pleural_effusion")
SPLITS = {"train": 12, "valid": 4, "test": 4}
SHAPES = {"tiny": (27, 64, 64), "default": (48, 96, 96)}
"""Volume shapes per preset ([S, Y, X]; S a multiple of 3, the slice groups)."""


class Spheres:
    def __init__(self, preset: str = "tiny", *, seed: int = 0, masks: bool = True) -> None:
        if preset not in SHAPES:
            raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(SHAPES)}")
        self.name = "example-spheres" if masks else "example-spheres-nomasks"
        self.label_names = LABELS
        self.volume_shape = SHAPES[preset]
        self.spacing = (320.0 / self.volume_shape[1],) * 3  # a 32 cm field of view
        self.seed, self.masks = seed, masks
        self._ids = {s: [f"{s}{i:02d}" for i in range(n)] for s, n in SPLITS.items()}

    def case_ids(self, split: str) -> list[str]:
        return list(self._ids[split])

    def load(self, case_id: str) -> Case:
        index = int(case_id[-2:])
        rng = np.random.default_rng([self.seed, sum(map(ord, case_id))])
        shape = self.volume_shape
        s, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
        body = ((y - shape[1] / 2) / (0.42 * shape[1])) ** 2 + (
            (x - shape[2] / 2) / (0.46 * shape[2])
        ) ** 2 < 1
        volume = np.full(shape, -1000, np.int16)
        volume[np.broadcast_to(body, shape)] = 40
        lungs = {}
        for organ, side in (("right_lung", -1), ("left_lung", 1)):
            lungs[organ] = ((s - shape[0] / 2) / (0.42 * shape[0])) ** 2 + (
                (y - shape[1] / 2) / (0.3 * shape[1])
            ) ** 2 + ((x - shape[2] * (0.5 + 0.2 * side)) / (0.14 * shape[2])) ** 2 < 1
            volume[lungs[organ]] = -850
        labels = np.array([index % 2 == 0, index % 4 < 2])  # both classes in every split
        findings = []
        if labels[0]:  # a nodule of 10 mm in one lung
            organ = ("right_lung", "left_lung")[int(rng.integers(2))]
            cs, cy, cx = (int(np.median(a)) for a in np.nonzero(lungs[organ]))
            radius = 5.0 / self.spacing[0]
            nodule = ((s - cs) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) <= radius**2
            volume[nodule] = 40
            findings.append(Finding("lung_nodule", (organ,), nodule if self.masks else None))
        if labels[1]:  # fluid at the back (high Y) of the right lung
            fluid = lungs["right_lung"] & (y > shape[1] * 0.6)
            volume[fluid] = 10
            findings.append(
                Finding("lung_pleural_effusion", ("right_lung",), fluid if self.masks else None)
            )
        return Case(
            case_id,
            volume,
            self.spacing,
            labels,
            report=None,
            findings=findings,
            located={f.label: list(f.organs) for f in findings},
        )


@hookimpl
def register_datasets(register):
    register(
        "example-spheres",
        lambda preset="tiny", **options: Spheres(preset, masks=True, **options),
        description="Example plugin: generated chests with nodules and effusions, with masks",
        presets=tuple(SHAPES),
        labels=LABELS,
        finding_masks=True,
    )
    register(
        "example-spheres-nomasks",
        lambda preset="tiny", **options: Spheres(preset, masks=False, **options),
        description="Example plugin: the same chests without finding masks",
        presets=tuple(SHAPES),
        labels=LABELS,
    )
