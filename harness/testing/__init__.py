"""Contract checks for every plugin kind (docs/plugins/), runnable in any CI.

In the spirit of scikit-learn's ``check_estimator``, each ``check_<kind>(name_or_factory)``
builds the plugin on a tiny input and asserts every rule of its kind's contract
(``ctbench.core.contracts``)::

    from ctbench.testing import check_architecture, check_explainer
    check_architecture("example-tinynet")
    check_explainer("example-activation")

Each rule is also available on its own in ``ARCHITECTURE_CHECKS``, ``EXPLAINER_CHECKS``,
``SEGMENTER_CHECKS``, ``DOWNSAMPLER_CHECKS``, ``DATASET_CHECKS`` and ``LABELER_CHECKS``
(name -> function of a case), so a test suite can parametrise over (plugin, rule) pairs; a
failure raises ``AssertionError`` naming the rule.
"""

from ctbench.testing.architectures import (
    ARCHITECTURE_CHECKS,
    TINY_INPUT_SHAPE,
    ArchitectureCase,
    architecture_case,
    check_architecture,
)
from ctbench.testing.datasets import DATASET_CHECKS, DatasetCase, check_dataset, dataset_case
from ctbench.testing.downsamplers import (
    DOWNSAMPLER_CHECKS,
    DownsamplerCase,
    check_downsampler,
    downsampler_case,
)
from ctbench.testing.explainers import (
    EXPLAINER_CHECKS,
    ExplainerCase,
    ReferenceSliceNet,
    check_explainer,
    explainer_case,
)
from ctbench.testing.labelers import (
    LABELER_CHECKS,
    LabelerCase,
    check_labeler,
    labeler_case,
)
from ctbench.testing.segmenters import (
    SEGMENTER_CHECKS,
    SegmenterCase,
    check_segmenter,
    segmenter_case,
    synthetic_chest,
)

__all__ = [
    "ARCHITECTURE_CHECKS",
    "DATASET_CHECKS",
    "DOWNSAMPLER_CHECKS",
    "EXPLAINER_CHECKS",
    "LABELER_CHECKS",
    "SEGMENTER_CHECKS",
    "TINY_INPUT_SHAPE",
    "ArchitectureCase",
    "DatasetCase",
    "DownsamplerCase",
    "ExplainerCase",
    "LabelerCase",
    "ReferenceSliceNet",
    "SegmenterCase",
    "architecture_case",
    "check_architecture",
    "check_dataset",
    "check_downsampler",
    "check_explainer",
    "check_labeler",
    "check_segmenter",
    "dataset_case",
    "downsampler_case",
    "explainer_case",
    "labeler_case",
    "segmenter_case",
    "synthetic_chest",
]
