"""Checks that a written figure shows what it should: its size and ink in every panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 80  # ctbench.report.figures saves at 80 dots per inch


def read_rgb(path: Path) -> np.ndarray:
    """The PNG as float RGB ``[height, width, 3]`` in [0, 1]."""
    from matplotlib import image

    return image.imread(path)[..., :3]


def ink(pixels: np.ndarray) -> float:
    """The share of pixels that are not (near) white background."""
    return float((pixels.min(axis=-1) < 0.9).mean())


def assert_figure(
    path: Path, size_inches: tuple[float, float], tiles: tuple[int, int], min_ink: float = 0.03
) -> np.ndarray:
    """The PNG has the figure's pixel size, and every tile of a rows x columns split (one per
    expected panel) holds content, not just background. Returns the image."""
    image = read_rgb(path)
    width, height = size_inches
    assert image.shape[:2] == (round(height * DPI), round(width * DPI)), image.shape
    rows, columns = tiles
    h, w = image.shape[0] // rows, image.shape[1] // columns
    for r in range(rows):
        for c in range(columns):
            share = ink(image[r * h : (r + 1) * h, c * w : (c + 1) * w])
            assert share >= min_ink, f"{path.name}: panel ({r}, {c}) is empty ({share:.3f} ink)"
    return image


def has_colour(image: np.ndarray, hex_colour: str, tolerance: float = 0.08) -> bool:
    """Whether any pixel is close to ``hex_colour`` (a plotted line of that colour)."""
    want = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(image - want).max(axis=-1) < tolerance).any())
