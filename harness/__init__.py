"""ctbench: explainable multiple-abnormality classification of chest CT volumes.

The core of the harness. It knows no model, explainer, segmenter, downsampler, dataset or
report labeler by name: all of them arrive as plugins through the ``ctbench`` entry-point
group. Importing this package is cheap (no torch, no plugin) so that ``ctbench --help`` stays
fast.
"""

from __future__ import annotations

from importlib import metadata

from ctbench.core.api import (
    create_dataset,
    create_downsampler,
    create_explainer,
    create_labeler,
    create_model,
    create_segmenter,
    list_plugins,
)
from ctbench.core.hookspecs import hookimpl, hookspec
from ctbench.regions.labeler import label_report

try:
    __version__ = metadata.version("ctbench")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "create_dataset",
    "create_downsampler",
    "create_explainer",
    "create_labeler",
    "create_model",
    "create_segmenter",
    "hookimpl",
    "hookspec",
    "label_report",
    "list_plugins",
]
