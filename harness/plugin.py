"""The plugin surface: everything a third-party plugin imports from ctbench, in one place.

Write a plugin against these names only (docs/plugins/): they keep their meaning across
releases, while the modules behind them may move. ::

    from ctbench.plugin import Case, Finding, hookimpl
"""

from __future__ import annotations

from ctbench.core.cases import SPLITS, Case, CaseSource, Finding, InvalidCaseError
from ctbench.core.hookspecs import hookimpl
from ctbench.regions.segmentation import (
    QC,
    SEGMENTED_ORGANS,
    NoLungError,
    OrganMasks,
    heuristic_masks,
)
from ctbench.vocabulary import ORGANS, output_labels

__all__ = [
    "ORGANS",
    "QC",
    "SEGMENTED_ORGANS",
    "SPLITS",
    "Case",
    "CaseSource",
    "Finding",
    "InvalidCaseError",
    "NoLungError",
    "OrganMasks",
    "heuristic_masks",
    "hookimpl",
    "output_labels",
]
