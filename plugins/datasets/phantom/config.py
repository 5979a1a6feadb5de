"""Configuration of the procedural chest CT phantom: presets, prevalence, confounders.

Everything that changes the generated data is in :class:`PhantomConfig`; its :meth:`key`
names the cache folder, so a changed configuration regenerates and an unchanged one reuses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from ctbench.core import paper
from ctbench.runtime.storage import config_key
from ctbench.vocabulary import output_labels

GENERATOR_VERSION = 2
"""Bumped whenever the generator's output changes for the same configuration."""

FINDING_LABELS = (
    "h_great_vessel_calcification",
    "h_mediastinum_lymphadenopathy",
    "heart_cardiomegaly",
    "heart_pericardial_effusion",
    "lung_atelectasis",
    "lung_consolidation",
    "lung_emphysema",
    "lung_groundglass",
    "lung_mass",
    "lung_nodule",
    "lung_pleural_effusion",
    "lung_pneumothorax",
)
"""The phantom's output labels, in the paper's model order (all among the 80)."""
assert [name for name in output_labels() if name in FINDING_LABELS] == list(FINDING_LABELS)

DEFAULT_PREVALENCE = {
    "h_great_vessel_calcification": 0.35,
    "h_mediastinum_lymphadenopathy": 0.25,
    "heart_cardiomegaly": 0.25,
    "heart_pericardial_effusion": 0.2,
    "lung_atelectasis": 0.3,
    "lung_consolidation": 0.25,
    "lung_emphysema": 0.25,
    "lung_groundglass": 0.25,
    "lung_mass": 0.2,
    "lung_nodule": 0.35,
    "lung_pleural_effusion": 0.3,
    "lung_pneumothorax": 0.2,
}

DEFAULT_CO_OCCURRENCE = (
    # (given, then, added log-odds): findings that travel together in real chest CT.
    ("lung_pleural_effusion", "lung_atelectasis", 1.2),
    ("heart_cardiomegaly", "heart_pericardial_effusion", 0.8),
    ("heart_cardiomegaly", "lung_pleural_effusion", 0.6),
    ("lung_consolidation", "lung_groundglass", 0.5),
    ("lung_mass", "h_mediastinum_lymphadenopathy", 0.8),
)

FIELD_OF_VIEW_MM = paper.FIELD_OF_VIEW_MM
"""Physical extent of every preset along [S, Y, X]: the paper's 405 x 420 x 420 at 0.8 mm."""

PRESETS = {
    # the phantom's one preset table: each preset's data, and ("run") how a run on it trains:
    # a recipe of ctbench's TRAINING_RECIPES and the keys it changes (docs/presets.md)
    "tiny": {
        "data": {"volume_shape": (27, 64, 64), "n_train": 24, "n_valid": 12, "n_test": 12},
        # nearest samples row/column 0 and 32 of a 2x2 grid: no lungs
        "run": {"recipe": "cpu-tiny", "downsampler": "area"},
    },
    "default": {
        "data": {"volume_shape": (48, 128, 128), "n_train": 192, "n_valid": 48, "n_test": 64},
        # nearest keeps ~4% of an organ's cells on a 4x4 grid
        "run": {"recipe": "cpu", "downsampler": "area"},
    },
    "paper": {
        "data": {
            "volume_shape": paper.VOLUME_SHAPE,
            "n_train": 2000,
            "n_valid": 1000,
            "n_test": 1000,
        },
        "run": {"recipe": "paper"},  # the paper's training, with the default (nearest) downsampler
    },
}


@dataclass(frozen=True)
class PhantomConfig:
    """Every number that shapes the phantom data set."""

    preset: str = "default"
    volume_shape: tuple[int, int, int] = (48, 128, 128)
    n_train: int = 192
    n_valid: int = 48
    n_test: int = 64
    seed: int = 0
    prevalence: tuple[tuple[str, float], ...] = tuple(DEFAULT_PREVALENCE.items())
    shared_factor: float = 0.6  # log-odds per SD of a patient-level "sickness" factor
    co_occurrence: tuple[tuple[str, str, float], ...] = DEFAULT_CO_OCCURRENCE
    confounders: bool = False
    cue_strength: float = 0.9  # P(cue agrees with the label) in train and valid
    # P(cue agrees) in the test split; None: reversed (1 - cue_strength), the shifted test
    test_agreement: float | None = None
    field_of_view_mm: tuple[float, float, float] = FIELD_OF_VIEW_MM
    version: int = field(default=GENERATOR_VERSION)

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides) -> PhantomConfig:
        """A preset's configuration with keyword overrides (``seed``, ``confounders``, ...)."""
        if preset not in PRESETS:
            raise ValueError(f"unknown phantom preset {preset!r}; presets: {', '.join(PRESETS)}")
        if "prevalence" in overrides and isinstance(overrides["prevalence"], dict):
            merged = {**DEFAULT_PREVALENCE, **overrides["prevalence"]}
            unknown = set(merged) - set(FINDING_LABELS)
            if unknown:
                raise ValueError(f"phantom prevalence: unknown labels {sorted(unknown)}")
            overrides["prevalence"] = tuple(merged.items())
        config = cls(preset=preset, **PRESETS[preset]["data"])
        return replace(config, **overrides)

    def __post_init__(self) -> None:
        if self.volume_shape[0] % 3:
            raise ValueError(f"volume_shape {self.volume_shape}: slices must be a multiple of 3")
        for label, p in self.prevalence:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"phantom prevalence of {label} must be in [0, 1], got {p}")
        for name in ("cue_strength", "test_agreement"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"phantom {name} must be in [0, 1], got {value}")

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return tuple(f / n for f, n in zip(self.field_of_view_mm, self.volume_shape, strict=True))

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}

    def test_agreement_p(self) -> float:
        """P(a test case's cue agrees with its label): reversed unless ``test_agreement``."""
        if self.test_agreement is None:
            return 1.0 - self.cue_strength
        return self.test_agreement

    def to_json(self) -> dict:
        data = json.loads(json.dumps(asdict(self)))
        if data["test_agreement"] is None:  # unset, it leaves every cache key as it was
            del data["test_agreement"]
        return data

    def key(self) -> str:
        """Short hash of the configuration: the cache folder's name."""
        return config_key(self.to_json())
