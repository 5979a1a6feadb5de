"""Progress bars that suit where the output goes.

``enabled=None`` (the default of every long command) shows a bar only when standard error is a
terminal: a log file or CI gets the one-line-per-phase messages instead of hundreds of bar
redraws. ``True`` and ``False`` force the choice (``--quiet`` is ``False``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def progress_bar(iterable: Iterable, *, enabled: bool | None = None, **options: Any):
    """A tqdm bar over ``iterable``; with ``enabled=None`` only on a terminal (tqdm's rule)."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if enabled is None else not enabled, **options)
