"""Normal chest anatomy of one phantom patient, in Hounsfield units, with organ masks.

Shapes and sizes vary per patient: body and thoracic cavity, subcutaneous fat (the
confounder's cue when confounders are on), lungs that taper from the apex to domed bases (the
right larger, its dome higher), heart toward the patient's left, aorta (ascending, arch,
descending), pulmonary trunk, trachea and main bronchi, oesophagus, spine, sternum and ribs,
branching lung vessels with texture and a gravity gradient, a patient table, image noise.

Painting is back to front: air, table, body wall, cavity, abdomen, bones, lungs, mediastinal
organs. Findings are painted afterwards by ``findings.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import Grid, Point, ellipsoid, segment_distance, smooth_noise, tube

HU = {
    "air": -1000.0,
    "fat": -100.0,
    "mediastinal_fat": -90.0,
    "muscle": 48.0,
    "cavity": -60.0,
    "liver": 58.0,
    "abdomen": 38.0,
    "lung": -865.0,
    "vessel": 38.0,
    "blood": 42.0,
    "airway_wall": 25.0,
    "cancellous": 260.0,
    "cortical": 700.0,
    "cartilage": 120.0,
    "disc": 85.0,
    "csf": 12.0,
    "table": 180.0,
    "pericardial_fat": -85.0,
    "fluid": 10.0,
}


@dataclass
class Anatomy:
    """Patient-level geometry in millimetres (see ``geometry`` for the axes)."""

    cavity_half_width: float
    cavity_half_depth: float
    cavity_y: float
    muscle_mm: float
    fat_mm: float
    z_apex: float
    z_base: float  # lowest point of the lungs (costophrenic recesses)
    dome_height: float
    taper_mm: float
    lungs: dict[
        str, tuple[float, float, float, float]
    ]  # side -> (x_centre, half_width, y_centre, half_depth)
    right_dome_lift: float
    heart_centre: Point
    heart_radii: Point
    pericardial_fat_mm: float = 3.0
    pericardial_effusion_mm: float = 0.0
    aorta: list[Point] = field(default_factory=list)
    aorta_radii: list[float] = field(default_factory=list)
    pulmonary_trunk: list[list[Point]] = field(default_factory=list)
    trachea: list[Point] = field(default_factory=list)
    bronchi: dict[str, list[Point]] = field(default_factory=dict)
    hila: dict[str, Point] = field(default_factory=dict)
    oesophagus: list[Point] = field(default_factory=list)
    spine_y: float = 0.0
    rib_period: float = 25.0
    rib_phase: float = 0.0
    noise_sigma: float = 15.0
    vessel_segments: dict[str, list[tuple[Point, Point, float]]] = field(default_factory=dict)
    markers: tuple[Point, ...] = ()  # ECG electrodes on the skin (a confounder cue)

    @property
    def z_carina(self) -> float:
        return self.trachea[-1][0]

    @property
    def z_central_diaphragm(self) -> float:
        return self.z_base - 0.7 * self.dome_height

    def lung_height(self) -> float:
        return self.z_base - self.z_apex


def draw_anatomy(
    rng: np.random.Generator, fat_mm: float, heart_scale: float = 1.0, marker: bool = False
) -> Anatomy:
    """Random patient geometry; ``fat_mm`` and ``marker`` come from the confounder plan."""
    w = rng.uniform(108, 125)
    d = rng.uniform(74, 90)
    cavity_y = rng.uniform(-12, -2)
    z_apex = rng.uniform(14, 32)
    z_base = rng.uniform(262, 292)
    dome = rng.uniform(45, 65)
    lung_y = cavity_y + 0.04 * d
    lungs = {
        "right": (-0.52 * w, 0.45 * w * rng.uniform(0.97, 1.03), lung_y, 0.93 * d),
        "left": (0.57 * w, 0.40 * w * rng.uniform(0.97, 1.03), lung_y, 0.93 * d),
    }
    z_central = z_base - 0.7 * dome
    radii = np.array([rng.uniform(42, 50), 0.50 * d, 0.40 * w]) * rng.uniform(0.92, 1.05)
    radii = radii * heart_scale
    heart_centre = (
        z_central - 0.8 * radii[0],
        cavity_y - 0.30 * d,
        0.20 * w + 0.5 * (radii[2] - 0.4 * w),
    )
    z_heart_top = heart_centre[0] - radii[0]
    z_carina = z_heart_top - rng.uniform(8, 18)
    z_arch = z_carina - rng.uniform(18, 28)
    spine_y = cavity_y + d - 8.0
    r_aorta = rng.uniform(11, 14)
    aorta = [
        (heart_centre[0] - 0.45 * radii[0], cavity_y - 0.20 * d, -0.02 * w),
        (z_arch + 18, cavity_y - 0.30 * d, -0.10 * w),
        (z_arch, cavity_y - 0.05 * d, 0.0),
        (z_arch + 10, spine_y - 40, 0.15 * w),
        (heart_centre[0], spine_y - 28, 0.17 * w),
        (330.0, spine_y - 24, 0.12 * w),
    ]
    aorta_radii = [
        1.15 * r_aorta,
        1.1 * r_aorta,
        r_aorta,
        0.95 * r_aorta,
        0.9 * r_aorta,
        0.85 * r_aorta,
    ]
    trunk_top = (z_carina + 12, cavity_y - 0.02 * d, 0.10 * w)
    pulmonary = [
        [(heart_centre[0] - 0.6 * radii[0], heart_centre[1] - 0.2 * radii[1], 0.05 * w), trunk_top],
        [trunk_top, (z_carina + 22, cavity_y + 0.02 * d, -0.30 * w)],
        [trunk_top, (z_carina + 14, cavity_y + 0.08 * d, 0.32 * w)],
    ]
    trachea = [(0.0, cavity_y - 0.45 * d, 0.0), (z_carina, cavity_y - 0.12 * d, 0.0)]
    hila = {
        "right": (z_carina + 30, cavity_y + 0.02 * d, -0.33 * w),
        "left": (z_carina + 40, cavity_y + 0.06 * d, 0.35 * w),
    }
    bronchi = {side: [trachea[-1], hila[side]] for side in hila}
    oesophagus = [(0.0, spine_y - 30, 0.04 * w), (330.0, spine_y - 28, 0.02 * w)]
    anatomy = Anatomy(
        cavity_half_width=w,
        cavity_half_depth=d,
        cavity_y=cavity_y,
        muscle_mm=rng.uniform(8, 12),
        fat_mm=fat_mm,
        z_apex=z_apex,
        z_base=z_base,
        dome_height=dome,
        taper_mm=rng.uniform(55, 75),
        lungs=lungs,
        right_dome_lift=rng.uniform(8, 16),
        heart_centre=heart_centre,
        heart_radii=tuple(radii),
        aorta=aorta,
        aorta_radii=aorta_radii,
        pulmonary_trunk=pulmonary,
        trachea=trachea,
        bronchi=bronchi,
        hila=hila,
        oesophagus=oesophagus,
        spine_y=spine_y,
        rib_period=rng.uniform(22, 28),
        rib_phase=rng.uniform(0, 20),
        noise_sigma=rng.uniform(10, 20),
    )
    anatomy.vessel_segments = {side: _vessel_tree(rng, anatomy, side) for side in ("right", "left")}
    if marker:
        anatomy.markers = tuple(
            _skin_marker_position(rng, anatomy, side, level) for side, level in ELECTRODE_SITES
        )
    return anatomy


def _vessel_tree(
    rng: np.random.Generator, anatomy: Anatomy, side: str
) -> list[tuple[Point, Point, float]]:
    """Three generations of branching pulmonary vessels from the hilum toward the periphery."""
    xc, half_w, yc, half_d = anatomy.lungs[side]
    hilum = np.array(anatomy.hila[side])
    lateral = 1.0 if side == "left" else -1.0
    centre = np.array([(anatomy.z_apex + anatomy.z_base) / 2, yc, xc])
    segments = []
    height = anatomy.lung_height()
    offsets = np.array(
        [
            [-0.38 * height, -0.2 * half_d, 0.2 * lateral * half_w],
            [0.30 * height, 0.45 * half_d, 0.2 * lateral * half_w],
            [0.05 * height, -0.45 * half_d, 0.5 * lateral * half_w],
            [0.25 * height, -0.1 * half_d, 0.6 * lateral * half_w],
        ]
    )
    targets = list(centre + offsets)
    stack = [(hilum, target - hilum, 4.5, 0) for target in targets]
    while stack:
        start, direction, radius, generation = stack.pop()
        direction = direction + rng.normal(0, 0.15 * np.linalg.norm(direction), 3)
        length = np.linalg.norm(direction) * (0.55 if generation == 0 else 1.0)
        unit = direction / (np.linalg.norm(direction) + 1e-6)
        end = start + unit * length
        segments.append((tuple(start), tuple(end), radius))
        if generation < 3:
            for _ in range(2):
                turn = rng.normal(0, 0.45, 3)
                child = unit + turn - (turn @ unit) * unit
                stack.append((end, child * length * 0.7, radius * 0.68, generation + 1))
    return segments


ELECTRODE_SITES = ((-1, 0.3), (1, 0.3), (-1, 0.75), (1, 0.75))
"""(side, height between lung apex and base) of the four chest ECG electrodes a monitored
patient wears: right and left, upper and lower chest."""


def _skin_marker_position(
    rng: np.random.Generator, anatomy: Anatomy, side: int, level: float
) -> Point:
    """A point on the anterior skin surface where an electrode is taped (``side`` -1 right,
    1 left; ``level`` 0 apex to 1 base), a little off its nominal site."""
    angle = side * rng.uniform(0.3, 0.9)  # radians from the anterior midline
    a = anatomy.cavity_half_width + anatomy.muscle_mm + anatomy.fat_mm
    b = anatomy.cavity_half_depth + anatomy.muscle_mm + anatomy.fat_mm
    height = anatomy.z_base - anatomy.z_apex
    z = anatomy.z_apex + (level + rng.uniform(-0.08, 0.08)) * height
    return (z, anatomy.cavity_y - b * np.cos(angle), a * np.sin(angle))


@dataclass
class Rendered:
    """A painted volume (float HU) with its organ masks and the parts findings need."""

    hu: np.ndarray
    organs: dict[str, np.ndarray]
    parts: dict[str, np.ndarray]


def paint_arms(hu: np.ndarray, anatomy: Anatomy, grid: Grid) -> None:
    """Arms down at the sides of the chest (as patients who cannot raise them, in intensive care,
    are scanned): an upper arm against each flank, subcutaneous fat around muscle around the
    humerus, from the top of the scan to below the lung bases, painted only where there is air
    (the body and the table stay as they are)."""
    z, y, x = grid.coords()
    a = anatomy
    flank = a.cavity_half_width + a.muscle_mm + a.fat_mm
    painted = np.zeros(grid.shape, bool)
    air = hu <= HU["air"] + 1
    span = z < a.z_base + 20
    for side in (-1, 1):
        xc, yc = side * (flank + ARM_RADII_MM[1] + 2.0), a.cavity_y
        for (half_y, half_x), value in zip(
            (ARM_RADII_MM, (ARM_RADII_MM[0] - 6, ARM_RADII_MM[1] - 6), (11.0, 11.0), (7.0, 7.0)),
            (HU["fat"], HU["muscle"], HU["cortical"], HU["cancellous"]),
            strict=True,
        ):
            inside = np.broadcast_to(_ellipse_inside(y, x, yc, xc, half_y, half_x), grid.shape)
            region = inside & span & (air | painted)
            hu[region] = value
            painted |= region


ARM_RADII_MM = (48.0, 38.0)
"""Half depth and half width of an upper arm's cross-section (fat included)."""


def _ellipse_inside(y, x, yc, xc, half_d, half_w) -> np.ndarray:
    return ((x - xc) / half_w) ** 2 + ((y - yc) / half_d) ** 2 <= 1.0


def diaphragm_z(anatomy: Anatomy, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Height (z, mm) of the diaphragm under each (y, x): two domes and a central tendon."""
    surfaces = []
    for side, (xc, half_w, yc, half_d) in anatomy.lungs.items():
        lift = anatomy.right_dome_lift if side == "right" else 0.0
        r2 = ((x - xc) / half_w) ** 2 + ((y - yc) / half_d) ** 2
        surfaces.append(anatomy.z_base - lift - anatomy.dome_height * np.clip(1 - r2, 0, 1))
    posterior = ((y - anatomy.cavity_y) / anatomy.cavity_half_depth) ** 2
    surfaces.append(anatomy.z_central_diaphragm + 40 * posterior + 0 * x)
    return np.minimum.reduce(np.broadcast_arrays(*surfaces))


def render_anatomy(anatomy: Anatomy, grid: Grid, rng: np.random.Generator) -> Rendered:
    """Paint the normal anatomy; returns float32 HU, organ masks and helper parts."""
    z, y, x = grid.coords()
    a = anatomy
    hu = np.full(grid.shape, HU["air"], np.float32)
    full = np.broadcast_to

    # Patient table: a curved plate under the back, the whole length of the scan.
    back = a.cavity_y + a.cavity_half_depth + a.muscle_mm + a.fat_mm
    table = (y > back + 12 + 0.0008 * x**2) & (y < back + 22 + 0.0008 * x**2) & (np.abs(x) < 160)
    hu[full(table, grid.shape)] = HU["table"]

    # Body wall: subcutaneous fat, then muscle, then the thoracic cavity.
    w, d, yc = a.cavity_half_width, a.cavity_half_depth, a.cavity_y
    body = _ellipse_inside(y, x, yc, 0.0, d + a.muscle_mm + a.fat_mm, w + a.muscle_mm + a.fat_mm)
    inner_wall = _ellipse_inside(y, x, yc, 0.0, d + a.muscle_mm, w + a.muscle_mm)
    cavity2d = _ellipse_inside(y, x, yc, 0.0, d, w)
    hu[full(body, grid.shape)] = HU["fat"]
    hu[full(inner_wall, grid.shape)] = HU["muscle"]
    cavity = full(cavity2d & (z >= a.z_apex - 25), grid.shape)
    hu[cavity] = HU["cavity"]

    # Below the diaphragm: liver on the right, other abdominal soft tissue on the left.
    diaphragm = diaphragm_z(a, y, x)
    abdomen = cavity & (z > diaphragm)
    hu[abdomen & full(x < 0.1 * w, grid.shape)] = HU["liver"]
    hu[abdomen & full(x >= 0.1 * w, grid.shape)] = HU["abdomen"]

    # Bones: ribs in the wall, sternum in front, vertebrae behind.
    rib_ring = inner_wall & ~_ellipse_inside(y, x, yc, 0.0, d + 1.5, w + 1.5) & (y > yc - 0.55 * d)
    rib_band = ((z - a.rib_phase) % a.rib_period) < 7.0
    hu[rib_ring & rib_band] = HU["cortical"]
    sternum = (
        _ellipse_inside(y, x, yc - d - 0.5 * a.muscle_mm, 0.0, 6.5, 14.0)
        & (z > a.z_apex + 15)
        & (z < a.z_apex + 0.75 * a.lung_height())
    )
    hu[sternum] = HU["cortical"] - 250
    spine_body = _ellipse_inside(y, x, a.spine_y, 0.0, 16.0, 17.0) & (z > -1)
    hu[full(spine_body, grid.shape)] = HU["cortical"]
    marrow = _ellipse_inside(y, x, a.spine_y, 0.0, 13.5, 14.5)
    disc = ((z - a.rib_phase - 10) % 28.0) < 5.0
    hu[full(marrow, grid.shape)] = HU["cancellous"]
    hu[full(marrow, grid.shape) & full(disc, grid.shape)] = HU["disc"]
    arch = _ellipse_inside(y, x, a.spine_y + 27, 0.0, 13.0, 13.0) & ~_ellipse_inside(
        y, x, a.spine_y + 27, 0.0, 8.0, 8.0
    )
    hu[full(arch, grid.shape)] = HU["cortical"] - 150
    hu[full(_ellipse_inside(y, x, a.spine_y + 27, 0.0, 8.0, 8.0), grid.shape)] = HU["csf"]
    spine_region = full(_ellipse_inside(y, x, a.spine_y, 0.0, 19.0, 20.0), grid.shape)

    # Mediastinal organs (as solids first, to carve the lungs).
    heart_outer = ellipsoid(
        grid,
        a.heart_centre,
        tuple(r + a.pericardial_fat_mm + a.pericardial_effusion_mm for r in a.heart_radii),
    )
    effusion_shell = ellipsoid(
        grid, a.heart_centre, tuple(r + a.pericardial_effusion_mm for r in a.heart_radii)
    )
    heart_inner = ellipsoid(grid, a.heart_centre, a.heart_radii)
    aorta = tube(grid, a.aorta, a.aorta_radii)
    pulmonary = np.zeros(grid.shape, bool)
    for branch in a.pulmonary_trunk:
        tube(grid, branch, [12.0, 9.0], into=pulmonary)
    great_vessel = (aorta | pulmonary) & ~heart_outer
    trachea = tube(grid, a.trachea, 9.0)
    airway_lumen = tube(grid, a.trachea, 7.0)
    bronchi = np.zeros(grid.shape, bool)
    for branch in a.bronchi.values():
        tube(grid, branch, [7.0, 5.0], into=bronchi)
        tube(grid, branch, [5.0, 3.2], into=airway_lumen)
    oesophagus = tube(grid, a.oesophagus, 7.5)

    carve = heart_outer | great_vessel | trachea | oesophagus | spine_region
    lungs = {}
    for side, (xc, half_w, ly, half_d) in a.lungs.items():
        profile = np.sqrt(np.clip((z - a.z_apex) / a.taper_mm, 0.0, 1.0))
        scale_w, scale_d = half_w * profile + 1e-3, half_d * profile + 1e-3
        inside = ((x - xc) / scale_w) ** 2 + ((y - ly) / scale_d) ** 2 <= 1.0
        lift = a.right_dome_lift if side == "right" else 0.0
        r2 = ((x - xc) / half_w) ** 2 + ((y - ly) / half_d) ** 2
        above_dome = z <= a.z_base - lift - a.dome_height * np.clip(1 - r2, 0, 1)
        pleura = _ellipse_inside(y, x, yc, 0.0, d - 1.5, w - 1.5)
        lungs[side] = inside & above_dome & pleura & ~carve
    lung_any = lungs["right"] | lungs["left"]  # bronchi inside a lung outline belong to it

    # Lung parenchyma: gravity gradient toward the back, smooth texture, vessels.
    gradient = 45.0 * np.clip((y - (yc - d)) / (2 * d), 0, 1)
    texture = smooth_noise(grid.shape, rng) * 14.0
    hu[lung_any] = (HU["lung"] + gradient + texture)[lung_any]
    vessels = np.zeros(grid.shape, bool)
    for side, segments in a.vessel_segments.items():
        for start, end, radius in segments:
            r = max(radius, 0.45 * min(grid.spacing))
            low = tuple(min(p, q) - r for p, q in zip(start, end, strict=True))
            high = tuple(max(p, q) + r for p, q in zip(start, end, strict=True))
            box = grid.box(low, high)
            if box is None:
                continue
            vessels[box] |= (segment_distance(grid, box, start, end) <= r) & lungs[side][box]
    hu[vessels] = HU["vessel"]

    # Mediastinum: fat between the lungs, organs inside it.
    x_right, x_left = a.lungs["right"][0], a.lungs["left"][0]
    between = cavity & (x > x_right) & (x < x_left) & (z >= a.z_apex - 10) & (z <= diaphragm)
    mediastinum = (between & ~lung_any & ~spine_region) | heart_outer | great_vessel
    hu[mediastinum & ~heart_outer & ~great_vessel] = HU["mediastinal_fat"]
    hu[heart_outer] = HU["pericardial_fat"]
    hu[effusion_shell] = HU["fluid"]
    hu[heart_inner] = HU["blood"]
    hu[great_vessel] = HU["blood"]
    hu[oesophagus] = HU["muscle"] - 10
    hu[(trachea | bronchi) & ~airway_lumen] = HU["airway_wall"]
    hu[airway_lumen] = HU["air"]

    organs = {
        "right_lung": lungs["right"],
        "left_lung": lungs["left"],
        "heart": heart_outer,
        "great_vessel": great_vessel,
        "mediastinum": mediastinum,
    }
    parts = {
        "aorta": aorta & ~heart_outer,
        "heart_inner": heart_inner,
        "pericardium": heart_outer & ~heart_inner,
        "pericardial_effusion": effusion_shell & ~heart_inner,
        "airway": trachea | bronchi,
        "vessels": vessels,
        "body": full(body, grid.shape),
        "cavity": cavity,
    }
    return Rendered(hu, organs, parts)


def add_noise(hu: np.ndarray, anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Gaussian image noise of the patient's level; returns int16 HU."""
    noisy = hu + rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(anatomy.noise_sigma)
    return np.clip(np.rint(noisy), -1024, 3071).astype(np.int16)
