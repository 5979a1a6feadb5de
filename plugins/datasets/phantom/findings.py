"""Which findings a phantom patient has, and how each is drawn in its organ with a voxel mask.

Planning is cheap and needs no voxels: :func:`plan_case` draws the labels (prevalence, a
shared patient-level factor, co-occurrence boosts), the confounder cues and each finding's
side, lobe, size and severity. :func:`paint_findings` turns the plan into HU changes and masks
on a rendered anatomy; every mask is intersected with its organ, so it lies inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .anatomy import Anatomy, Rendered
from .config import FINDING_LABELS, PhantomConfig
from .geometry import Grid, ellipsoid

SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
FAT_MM = (5.0, 13.0)
"""Body-wall fat without the fat cue (the normal adult range runs from about 5 to 40 mm)."""
FAT_WITH_CUE_MM = (22.0, 32.0)
"""Body-wall fat with the cue; :func:`toggle_fat` maps one range onto the other."""
LOBE_Z = {"upper": (0.10, 0.40), "middle": (0.42, 0.60), "lower": (0.62, 0.90)}
STATIONS = ("subcarinal", "right paratracheal", "aortopulmonary window")


@dataclass
class FindingPlan:
    label: str
    organs: tuple[str, ...]
    details: dict = field(default_factory=dict)


@dataclass
class CasePlan:
    """Everything drawn before any voxel: labels, findings, confounder cues, seeds."""

    case_id: str
    split: str
    index: int
    labels: dict[str, bool]
    findings: list[FindingPlan]
    fat_mm: float
    marker: bool
    seeds: dict[str, int]
    arms: bool = False

    def label_vector(self) -> np.ndarray:
        return np.array([self.labels[name] for name in FINDING_LABELS], bool)


SPLIT_PREFIX = {"train": "trn", "valid": "val", "test": "tst"}


def case_id(split: str, index: int) -> str:
    """RAD-ChestCT-style ids: ``trn00000``, ``val00000``, ``tst00000``."""
    return f"{SPLIT_PREFIX[split]}{index:05d}"


def toggle_fat(fat_mm: float) -> float:
    """The same patient's fat on the other side of the cue: the same place in the other range."""
    (lo, hi), (cue_lo, cue_hi) = FAT_MM, FAT_WITH_CUE_MM
    if cue_lo <= fat_mm <= cue_hi:
        return lo + (fat_mm - cue_lo) * (hi - lo) / (cue_hi - cue_lo)
    if lo <= fat_mm <= hi:
        return cue_lo + (fat_mm - lo) * (cue_hi - cue_lo) / (hi - lo)
    raise ValueError(f"fat of {fat_mm:.1f} mm is in neither cue range: no confounders planned")


def without_finding(plan: CasePlan, label: str) -> CasePlan:
    """The plan with ``label``'s findings taken out (the label negative), all else the same."""
    if not plan.labels[label]:
        raise ValueError(f"{plan.case_id} has no {label} to remove")
    return replace(
        plan,
        labels={**plan.labels, label: False},
        findings=[f for f in plan.findings if f.label != label],
    )


def has_cue(plan: CasePlan, kind: str) -> bool:
    """Whether the plan carries cue ``kind`` (``fat``: fat in the cue's range)."""
    if kind == "fat":
        return bool(plan.fat_mm >= FAT_WITH_CUE_MM[0])
    if kind == "marker":
        return bool(plan.marker)
    if kind == "arms":
        return bool(plan.arms)
    raise ValueError(f"unknown cue {kind!r}")


def with_cue_toggled(plan: CasePlan, kind: str) -> CasePlan:
    """The plan with cue ``kind`` (``fat``, ``marker``, ``arms``) on the other side, all else
    the same."""
    if kind == "fat":
        return replace(plan, fat_mm=toggle_fat(plan.fat_mm))
    if kind == "marker":
        return replace(plan, marker=not plan.marker)
    if kind == "arms":
        return replace(plan, arms=not plan.arms)
    raise ValueError(f"unknown cue {kind!r}")


def finding_streams(plan: CasePlan) -> list[np.random.Generator]:
    """One random stream per planned finding, keyed by its label and its rank among that
    label's findings: taking a label's findings out leaves every other finding's draws as
    they were (the counterfactuals rely on it)."""
    streams, seen = [], dict.fromkeys(FINDING_LABELS, 0)
    for finding in plan.findings:
        key = (2, FINDING_LABELS.index(finding.label), seen[finding.label])
        seen[finding.label] += 1
        seed = np.random.SeedSequence(plan.seeds["paint"], spawn_key=key)
        streams.append(np.random.default_rng(seed))
    return streams


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + np.exp(-v))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def _sides(rng: np.random.Generator, both: float) -> tuple[str, ...]:
    if rng.random() < both:
        return ("right", "left")
    return ("right",) if rng.random() < 0.55 else ("left",)


def _lobe(rng: np.random.Generator, side: str, weights=(0.4, 0.2, 0.4)) -> str:
    return str(rng.choice(["upper", "middle", "lower"], p=weights))


def plan_case(config: PhantomConfig, split: str, index: int) -> CasePlan:
    """Draw one case's labels, findings and cues; independent of every other case."""
    seq = np.random.SeedSequence([config.seed, SPLIT_CODES[split], index])
    labels_seq, details_seq, anatomy_seq, paint_seq, report_seq = seq.spawn(5)
    rng = np.random.default_rng(labels_seq)
    prevalence = dict(config.prevalence)
    shared = rng.standard_normal()
    labels: dict[str, bool] = {}
    boosts = config.co_occurrence
    for name in FINDING_LABELS:
        logit = _logit(prevalence[name]) + config.shared_factor * shared
        logit += sum(b for given, then, b in boosts if then == name and labels.get(given))
        labels[name] = bool(rng.random() < _sigmoid(logit))

    # Confounder cues: in train/valid each agrees with its label with probability
    # cue_strength; in the shifted test split the agreement is reversed (or test_agreement).
    rng_cue = np.random.default_rng(details_seq.spawn(1)[0])
    agree_p = config.cue_strength if split != "test" else config.test_agreement_p()
    planted = {kind: label for label, kind in config.confounded().items()}
    present = {k: labels[label] == (rng_cue.random() < agree_p) for k, label in planted.items()}
    if "fat" in present:
        fat_mm = rng_cue.uniform(*FAT_WITH_CUE_MM) if present["fat"] else rng_cue.uniform(*FAT_MM)
    else:
        fat_mm = rng_cue.uniform(FAT_MM[0], FAT_WITH_CUE_MM[1])
    marker = present.get("marker", False)
    arms = present.get("arms", False)

    rng = np.random.default_rng(details_seq)
    findings = [f for name in FINDING_LABELS if labels[name] for f in _plan_findings(name, rng)]
    seeds = {
        "anatomy": int(anatomy_seq.generate_state(1)[0]),
        "paint": int(paint_seq.generate_state(1)[0]),
        "report": int(report_seq.generate_state(1)[0]),
    }
    return CasePlan(
        case_id(split, index), split, index, labels, findings, fat_mm, marker, seeds, arms
    )


def _plan_findings(label: str, rng: np.random.Generator) -> list[FindingPlan]:
    """The instances of one present label, with what the report will say about them."""
    lung = lambda side: (f"{side}_lung",)  # noqa: E731
    if label == "lung_nodule":
        count = 1 if rng.random() < 0.75 else 2
        out = []
        for _ in range(count):
            side = _sides(rng, 0.0)[0]
            out.append(
                FindingPlan(
                    label,
                    lung(side),
                    {
                        "side": side,
                        "lobe": _lobe(rng, side),
                        "size_mm": int(rng.integers(6, 11)),
                        "u": rng.random(3).tolist(),
                    },
                )
            )
        return out
    if label == "lung_mass":
        side = _sides(rng, 0.0)[0]
        size = round(float(rng.uniform(3.0, 5.0)), 1)
        return [
            FindingPlan(
                label,
                lung(side),
                {
                    "side": side,
                    "lobe": _lobe(rng, side),
                    "size_cm": size,
                    "u": rng.random(3).tolist(),
                },
            )
        ]
    if label in ("lung_consolidation", "lung_groundglass"):
        side = _sides(rng, 0.0)[0]
        return [
            FindingPlan(
                label,
                lung(side),
                {
                    "side": side,
                    "lobe": _lobe(rng, side, (0.3, 0.2, 0.5)),
                    "u": rng.random(3).tolist(),
                },
            )
        ]
    if label == "lung_emphysema":
        sides = _sides(rng, 0.7)
        severity = str(rng.choice(["mild", "moderate", "severe"]))
        return [
            FindingPlan(label, lung(s), {"side": s, "sides": list(sides), "severity": severity})
            for s in sides
        ]
    if label == "lung_pneumothorax":
        side = _sides(rng, 0.0)[0]
        size = str(rng.choice(["small", "moderate"], p=[0.6, 0.4]))
        return [FindingPlan(label, lung(side), {"side": side, "severity": size})]
    if label == "lung_pleural_effusion":
        sides = _sides(rng, 0.4)
        severity = str(rng.choice(["small", "moderate", "large"], p=[0.45, 0.4, 0.15]))
        return [
            FindingPlan(label, lung(s), {"side": s, "sides": list(sides), "severity": severity})
            for s in sides
        ]
    if label == "lung_atelectasis":
        sides = _sides(rng, 0.4)
        return [FindingPlan(label, lung(s), {"side": s, "sides": list(sides)}) for s in sides]
    if label == "heart_cardiomegaly":
        scale = float(rng.uniform(1.22, 1.42))
        return [
            FindingPlan(
                label,
                ("heart",),
                {
                    "scale": scale,
                    "severity": "mild" if scale < 1.32 else "moderate",
                },
            )
        ]
    if label == "heart_pericardial_effusion":
        thickness = float(rng.uniform(6, 15))
        return [
            FindingPlan(
                label,
                ("heart",),
                {
                    "thickness_mm": thickness,
                    "severity": "small" if thickness < 10 else "moderate",
                },
            )
        ]
    if label == "h_great_vessel_calcification":
        return [FindingPlan(label, ("great_vessel",), {"count": int(rng.integers(3, 9))})]
    if label == "h_mediastinum_lymphadenopathy":
        count = 1 if rng.random() < 0.6 else 2
        stations = rng.choice(STATIONS, size=count, replace=False)
        return [
            FindingPlan(
                label,
                ("mediastinum",),
                {
                    "station": str(st),
                    "size_cm": round(float(rng.uniform(1.2, 2.2)), 1),
                },
            )
            for st in stations
        ]
    raise ValueError(f"the phantom cannot draw {label!r}")


def anatomy_modifiers(plan: CasePlan) -> dict:
    """Findings that change the anatomy itself (an enlarged heart, a pericardial effusion)."""
    out = {"heart_scale": 1.0, "pericardial_effusion_mm": 0.0}
    for finding in plan.findings:
        if finding.label == "heart_cardiomegaly":
            out["heart_scale"] = finding.details["scale"]
        if finding.label == "heart_pericardial_effusion":
            out["pericardial_effusion_mm"] = finding.details["thickness_mm"]
    return out


# --- painting ---------------------------------------------------------------------------


def _lung_point(grid: Grid, anatomy: Anatomy, lung: np.ndarray, lobe: str, u, rng):
    """A physical point well inside ``lung`` at the lobe's height (anterior for the middle lobe)."""
    z0, z1 = LOBE_Z[lobe]
    slices = np.flatnonzero(lung.any(axis=(1, 2)))
    for attempt in range(30):
        frac = z0 + (z1 - z0) * (u[0] if attempt == 0 else rng.random())
        z = anatomy.z_apex + frac * anatomy.lung_height()
        s = int(np.clip(grid.index_of((z, 0.0, 0.0))[0], slices.min(), slices.max()))
        ys, xs = np.nonzero(lung[s])
        if len(ys) == 0:
            continue
        if lobe == "middle":  # right middle lobe and lingula lie anteriorly
            front = ys <= np.percentile(ys, 50)
            ys, xs = ys[front], xs[front]
        # Stay away from the pleura: prefer voxels near the lung's in-slice centre.
        cy, cx = ys.mean(), xs.mean()
        spread = np.sqrt(((ys - cy) * grid.spacing[1]) ** 2 + ((xs - cx) * grid.spacing[2]) ** 2)
        inner = spread <= np.percentile(spread, 60)
        pick = rng.integers(inner.sum())
        voxel = (s, ys[inner][pick], xs[inner][pick])
        break
    else:  # no lung at any drawn height: any lung voxel
        voxel = tuple(np.argwhere(lung)[rng.integers(lung.sum())])
    coords = grid.coords(tuple(slice(int(v), int(v) + 1) for v in voxel))
    return tuple(float(c.ravel()[0]) for c in coords)


def _blob(grid: Grid, centre, radius: float, rng, lobes: int = 3) -> np.ndarray:
    """An irregular solid: the union of a few overlapping ellipsoids around ``centre``."""
    mask = ellipsoid(grid, centre, (radius,) * 3)
    for _ in range(lobes - 1):
        offset = rng.normal(0, 0.45 * radius, 3)
        radii = tuple(radius * rng.uniform(0.55, 0.85, 3))
        ellipsoid(grid, tuple(np.add(centre, offset)), radii, into=mask)
    return mask


def _boundary_band(organ: np.ndarray, thickness_vox: np.ndarray, posterior: bool) -> np.ndarray:
    """Voxels within ``thickness_vox`` (per slice, along Y) of the organ's front or back edge."""
    present = organ.any(axis=1)  # [S, X]
    rows = np.arange(organ.shape[1])[None, :, None]
    if posterior:
        edge = organ.shape[1] - 1 - np.argmax(organ[:, ::-1, :], axis=1)  # last row per column
        band = rows > edge[:, None, :] - thickness_vox
    else:
        edge = np.argmax(organ, axis=1)
        band = rows < edge[:, None, :] + thickness_vox
    return organ & band & present[:, None, :]


def paint_findings(
    plan: CasePlan,
    anatomy: Anatomy,
    grid: Grid,
    rendered: Rendered,
    streams: list[np.random.Generator],
) -> list[np.ndarray]:
    """Paint every planned finding into ``rendered.hu``, each from its own random stream
    (:func:`finding_streams`); returns one mask per finding."""
    hu, organs, parts = rendered.hu, rendered.organs, rendered.parts
    z = grid.axis(0)[:, None, None]
    lung_height = anatomy.lung_height()
    masks: list[np.ndarray | None] = [None] * len(plan.findings)
    # Pleural-space findings are painted first; later lung findings use the aerated rest.
    pleural = {"right": np.zeros(grid.shape, bool), "left": np.zeros(grid.shape, bool)}
    order = sorted(
        range(len(plan.findings)), key=lambda k: _PAINT_ORDER.index(plan.findings[k].label)
    )
    for k in order:
        finding, rng = plan.findings[k], streams[k]
        d = finding.details
        label = finding.label
        organ = np.logical_or.reduce([organs[o] for o in finding.organs])
        if label.startswith("lung_") and label not in (
            "lung_pleural_effusion",
            "lung_pneumothorax",
        ):
            organ = organ & ~pleural[d["side"]]
        if label == "lung_pleural_effusion":
            scale = {"small": (12, 22), "moderate": (26, 40), "large": (45, 60)}[d["severity"]]
            top = anatomy.z_apex + rng.uniform(0.40, 0.55) * lung_height
            depth_mm = (
                rng.uniform(*scale) * np.clip((z - top) / (anatomy.z_base - top), 0, 1) ** 0.7
            )
            mask = _boundary_band(organ, depth_mm / grid.spacing[1], posterior=True)
            mask &= depth_mm > 0
            hu[mask] = rng.uniform(4, 18)
            pleural[d["side"]] |= mask
        elif label == "lung_atelectasis":
            thickness = rng.uniform(8, 16) / grid.spacing[1]
            mask = _boundary_band(organ, thickness, posterior=True)
            mask &= z > anatomy.z_apex + 0.62 * lung_height
            hu[mask] = rng.uniform(5, 35)
        elif label == "lung_pneumothorax":
            width = {"small": (8, 14), "moderate": (16, 26)}[d["severity"]]
            mask = _boundary_band(organ, rng.uniform(*width) / grid.spacing[1], posterior=False)
            mask &= (z < anatomy.z_apex + 0.7 * lung_height) & ~pleural[d["side"]]
            hu[mask] = -1000.0
            pleural[d["side"]] |= mask
        elif label == "lung_emphysema":
            zone = organ & (z < anatomy.z_apex + 0.5 * lung_height)
            drop = {"mild": 20.0, "moderate": 30.0, "severe": 40.0}[d["severity"]]
            hu[zone] -= drop
            holes = np.zeros(grid.shape, bool)
            points = np.argwhere(zone)
            for idx in points[rng.integers(len(points), size=min(len(points), 40))]:
                sz, sy, sx = grid.coords(tuple(slice(int(i), int(i) + 1) for i in idx))
                r = max(rng.uniform(3, 7), 0.6 * max(grid.spacing[1:]))
                ellipsoid(grid, (sz.item(), sy.item(), sx.item()), (r, r, r), into=holes)
            holes &= zone
            hu[holes] = -1000.0
            mask = zone
        elif label in ("lung_nodule", "lung_mass", "lung_consolidation", "lung_groundglass"):
            centre = _lung_point(grid, anatomy, organ, d["lobe"], d["u"], rng)
            if label == "lung_nodule":
                mask = ellipsoid(grid, centre, (d["size_mm"] / 2,) * 3) & organ
                hu[mask] = rng.uniform(25, 55)
            elif label == "lung_mass":
                mask = _blob(grid, centre, d["size_cm"] * 5.0, rng) & organ
                hu[mask] = rng.uniform(30, 45)
            elif label == "lung_consolidation":
                mask = _blob(grid, centre, rng.uniform(18, 28), rng, lobes=4) & organ
                hu[mask] = rng.uniform(15, 35)
                hu[mask & parts["airway"]] = -1000.0
            else:
                mask = _blob(grid, centre, rng.uniform(20, 32), rng, lobes=4) & organ
                hu[mask] += rng.uniform(260, 330)
        elif label == "heart_cardiomegaly":
            mask = organs["heart"].copy()
        elif label == "heart_pericardial_effusion":
            mask = parts["pericardial_effusion"].copy()
        elif label == "h_great_vessel_calcification":
            mask = _aortic_plaques(grid, anatomy, d["count"], rng) & parts["aorta"] & organ
            hu[mask] = rng.uniform(450, 900)
        elif label == "h_mediastinum_lymphadenopathy":
            mask = _lymph_node(grid, anatomy, d, rng, rendered)
            hu[mask] = rng.uniform(30, 45)
        else:  # pragma: no cover - plan_findings rejects unknown labels
            raise ValueError(label)
        if not mask.any():  # too small for this grid: keep at least the nearest organ voxel
            mask = _nearest_voxel(organ, rng)
        masks[k] = mask
    return masks  # type: ignore[return-value]


_PAINT_ORDER = [
    "lung_pleural_effusion",
    "lung_pneumothorax",
    "lung_atelectasis",
    "lung_emphysema",
    "lung_groundglass",
    "lung_consolidation",
    "lung_mass",
    "lung_nodule",
    "heart_cardiomegaly",
    "heart_pericardial_effusion",
    "h_great_vessel_calcification",
    "h_mediastinum_lymphadenopathy",
]
assert sorted(_PAINT_ORDER) == sorted(FINDING_LABELS)


def _nearest_voxel(organ: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros_like(organ)
    points = np.argwhere(organ)
    if len(points):
        mask[tuple(points[rng.integers(len(points))])] = True
    return mask


def _aortic_plaques(grid: Grid, anatomy: Anatomy, count: int, rng) -> np.ndarray:
    """Small bright blobs on the aortic wall, anywhere along ascending, arch and descending."""
    mask = np.zeros(grid.shape, bool)
    points, radii = np.array(anatomy.aorta), anatomy.aorta_radii
    for _ in range(count):
        k = rng.integers(len(points) - 1)
        t = rng.random()
        centre = points[k] + t * (points[k + 1] - points[k])
        axis = (points[k + 1] - points[k]) / (np.linalg.norm(points[k + 1] - points[k]) + 1e-6)
        direction = rng.normal(size=3)
        direction -= (direction @ axis) * axis
        direction /= np.linalg.norm(direction) + 1e-6
        radius = radii[k] + t * (radii[k + 1] - radii[k])
        spot = centre + direction * (radius - 1.0)
        r = max(2.5, 0.55 * max(grid.spacing))
        ellipsoid(grid, tuple(spot), (r, r, r), into=mask)
    return mask


def _lymph_node(grid: Grid, anatomy: Anatomy, details: dict, rng, rendered: Rendered) -> np.ndarray:
    """An enlarged node at its mediastinal station, outside the heart, vessels and airway."""
    w, d, yc = anatomy.cavity_half_width, anatomy.cavity_half_depth, anatomy.cavity_y
    carina = anatomy.z_carina
    trachea_y = anatomy.trachea[-1][1]
    centres = {
        "subcarinal": (carina + 20, trachea_y + 18, 0.03 * w),
        "right paratracheal": (carina - 22, trachea_y, -16.0),
        "aortopulmonary window": (carina - 8, yc + 0.02 * d, 0.14 * w),
    }
    radius = details["size_cm"] * 5.0
    free = (
        rendered.organs["mediastinum"]
        & ~rendered.organs["heart"]
        & ~rendered.organs["great_vessel"]
        & ~rendered.parts["airway"]
    )
    centre = centres[details["station"]]
    for _ in range(6):
        mask = ellipsoid(grid, centre, (radius * 1.2, radius, radius)) & free
        if mask.sum() * np.prod(grid.spacing) > 0.3 * (4 / 3) * np.pi * radius**3:
            return mask
        centre = tuple(np.add(centre, rng.normal(0, 6, 3)))
    return mask
