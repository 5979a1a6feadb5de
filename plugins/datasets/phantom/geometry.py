"""Voxel grids in millimetres and the solid primitives the phantom is drawn with.

Axes are [S, Y, X] = [superior->inferior, anterior->posterior, patient right->patient left].
Physical coordinates: z from 0 at the top of the field of view downwards; y and x centred on
the field of view (x < 0 is the patient's right). Each primitive is evaluated only inside its
bounding box, so small structures cost little even on a 405 x 420 x 420 grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Point = tuple[float, float, float]


@dataclass(frozen=True)
class Grid:
    """A voxel grid of ``shape`` with ``spacing`` (mm) covering the field of view."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def axis(self, axis: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Physical coordinate (mm) of voxel centres ``start:stop`` along ``axis``."""
        stop = self.shape[axis] if stop is None else stop
        centres = (np.arange(start, stop, dtype=np.float32) + 0.5) * self.spacing[axis]
        if axis > 0:  # y and x are centred on the field of view
            centres -= self.shape[axis] * self.spacing[axis] / 2
        return centres

    def coords(self, box: tuple[slice, slice, slice] | None = None):
        """Broadcastable (z, y, x) coordinate arrays for ``box`` (default: the whole grid)."""
        box = box or (slice(0, self.shape[0]), slice(0, self.shape[1]), slice(0, self.shape[2]))
        z = self.axis(0, box[0].start, box[0].stop)[:, None, None]
        y = self.axis(1, box[1].start, box[1].stop)[None, :, None]
        x = self.axis(2, box[2].start, box[2].stop)[None, None, :]
        return z, y, x

    def box(self, low: Point, high: Point) -> tuple[slice, slice, slice] | None:
        """Voxel index box covering the physical box [low, high]; None if it misses the grid."""
        slices = []
        for axis in range(3):
            offset = 0.0 if axis == 0 else self.shape[axis] * self.spacing[axis] / 2
            start = int(np.floor((low[axis] + offset) / self.spacing[axis] - 0.5))
            stop = int(np.ceil((high[axis] + offset) / self.spacing[axis] + 0.5)) + 1
            start, stop = max(start, 0), min(stop, self.shape[axis])
            if start >= stop:
                return None
            slices.append(slice(start, stop))
        return tuple(slices)  # type: ignore[return-value]

    def index_of(self, point: Point) -> tuple[int, int, int]:
        """Nearest voxel index of a physical point (clipped to the grid)."""
        out = []
        for axis in range(3):
            offset = 0.0 if axis == 0 else self.shape[axis] * self.spacing[axis] / 2
            i = int(np.rint((point[axis] + offset) / self.spacing[axis] - 0.5))
            out.append(min(max(i, 0), self.shape[axis] - 1))
        return tuple(out)  # type: ignore[return-value]


def ellipsoid(
    grid: Grid, centre: Point, radii: Point, into: np.ndarray | None = None
) -> np.ndarray:
    """Bool mask of an axis-aligned ellipsoid; ORed into ``into`` when given."""
    out = np.zeros(grid.shape, bool) if into is None else into
    radii = tuple(max(r, s / 2) for r, s in zip(radii, grid.spacing, strict=True))
    low = tuple(c - r for c, r in zip(centre, radii, strict=True))
    high = tuple(c + r for c, r in zip(centre, radii, strict=True))
    box = grid.box(low, high)
    if box is None:
        return out
    z, y, x = grid.coords(box)
    inside = (
        ((z - centre[0]) / radii[0]) ** 2
        + ((y - centre[1]) / radii[1]) ** 2
        + ((x - centre[2]) / radii[2]) ** 2
    ) <= 1.0
    out[box] |= inside
    return out


def segment_distance(grid: Grid, box, start: Point, end: Point) -> np.ndarray:
    """Distance (mm) from each voxel centre of ``box`` to the segment start-end."""
    z, y, x = grid.coords(box)
    a = np.asarray(start, np.float32)
    d = np.asarray(end, np.float32) - a
    length2 = float(d @ d) or 1e-6
    t = np.clip(((z - a[0]) * d[0] + (y - a[1]) * d[1] + (x - a[2]) * d[2]) / length2, 0.0, 1.0)
    return np.sqrt(
        (z - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (x - a[2] - t * d[2]) ** 2
    )


def tube(
    grid: Grid, points: list[Point], radius: float | list[float], into: np.ndarray | None = None
) -> np.ndarray:
    """Bool mask of a polyline swept by a sphere (radius per point, linearly interpolated)."""
    out = np.zeros(grid.shape, bool) if into is None else into
    radii = [radius] * len(points) if np.isscalar(radius) else list(radius)
    min_radius = min(grid.spacing) / 2
    for (p0, r0), (p1, r1) in zip(
        zip(points[:-1], radii[:-1], strict=True),
        zip(points[1:], radii[1:], strict=True),
        strict=True,
    ):
        r = max(r0, r1, min_radius)
        low = tuple(min(a, b) - r for a, b in zip(p0, p1, strict=True))
        high = tuple(max(a, b) + r for a, b in zip(p0, p1, strict=True))
        box = grid.box(low, high)
        if box is None:
            continue
        distance = segment_distance(grid, box, p0, p1)
        out[box] |= distance <= max((r0 + r1) / 2, min_radius)
    return out


def smooth_noise(
    shape: tuple[int, int, int], rng: np.random.Generator, coarseness: int = 4
) -> np.ndarray:
    """Unit-variance smooth random texture: coarse Gaussian noise, blurred and upsampled."""
    from scipy import ndimage

    coarse_shape = tuple(max(2, n // coarseness) for n in shape)
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape).astype(np.float32), 1.0)
    coarse /= coarse.std() + 1e-6
    zoom = [n / c for n, c in zip(shape, coarse_shape, strict=True)]
    fine = ndimage.zoom(coarse, zoom, order=1)
    return fine[: shape[0], : shape[1], : shape[2]]
