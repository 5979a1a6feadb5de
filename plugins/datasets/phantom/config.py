"""Configuration of the procedural chest CT phantom: presets, prevalence, confounders.

Everything that changes the generated data is in :class:`PhantomConfig`; its :meth:`key`
names the cache folder, so a changed configuration regenerates and an unchanged one reuses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace

from ctbench.core import paper
from ctbench.runtime.storage import config_key
from ctbench.vocabulary import output_labels

GENERATOR_VERSION = 3
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

CUE_KINDS = {
    "fat": "thick body-wall fat: 22-32 mm of subcutaneous fat against 5-13 mm without the cue",
    "marker": "skin markers: four ECG electrodes (metal snaps of 6 mm radius) taped on the "
    "upper and lower, right and left anterior chest wall, as a monitored patient wears them",
    "arms": "arms down at the sides of the chest, as patients who cannot raise them (in "
    "intensive care) are scanned, instead of raised above the head",
}
"""The cues the phantom can plant; both stay within what real chest CT shows."""

DEFAULT_CUES = (("fat", "h_great_vessel_calcification"), ("arms", "lung_consolidation"))
"""``--confounders``' pairings (cue, label): the paper's case (body fat with aortic
calcification) and a cue on a label whose finding models learn: arms down with consolidation
(patients with pneumonia in intensive care are scanned with their arms at their sides). Skin
markers (ECG electrodes) with consolidation were measured and not read by any model, nor was one
4 mm marker with pleural effusion: they stay as options, not as defaults (docs/mask-loss.md)."""


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
        "data": {
            "volume_shape": (48, 128, 128),
            "n_train": 192,
            "n_valid": 48,
            "n_test": 256,
            "n_shift": 256,
        },
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
    n_test: int = 256
    seed: int = 0
    prevalence: tuple[tuple[str, float], ...] = tuple(DEFAULT_PREVALENCE.items())
    shared_factor: float = 0.6  # log-odds per SD of a patient-level "sickness" factor
    co_occurrence: tuple[tuple[str, str, float], ...] = DEFAULT_CO_OCCURRENCE
    confounders: bool = False
    cues: tuple[tuple[str, str], ...] = DEFAULT_CUES  # (cue kind, label) planted by confounders
    cue_strength: float = 0.9  # P(cue agrees with the label) in train and valid
    # P(cue agrees) in the test split; None: reversed (1 - cue_strength), the shifted test
    test_agreement: float | None = None
    # test cases of the iid and balanced shift splits (None: n_test); at least n_test
    n_shift: int | None = None
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
        if "cues" in overrides:
            overrides["cues"] = parse_cues(overrides["cues"])
        unknown = set(overrides) - {f.name for f in fields(cls)} - {"preset"}
        if unknown:
            options = ", ".join(f.name for f in fields(cls) if f.name not in ("preset", "version"))
            raise ValueError(
                f"phantom has no option {', '.join(sorted(unknown))}; options: {options}"
            )
        config = cls(preset=preset, **PRESETS[preset]["data"])
        return replace(config, **overrides)

    def __post_init__(self) -> None:
        if self.volume_shape[0] % 3:
            raise ValueError(f"volume_shape {self.volume_shape}: slices must be a multiple of 3")
        for label, p in self.prevalence:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"phantom prevalence of {label} must be in [0, 1], got {p}")
        kinds = [kind for kind, _ in self.cues]
        labels = [label for _, label in self.cues]
        for kind, label in self.cues:
            if kind not in CUE_KINDS:
                raise ValueError(f"phantom cue {kind!r}: cues are {', '.join(CUE_KINDS)}")
            if label not in FINDING_LABELS:
                raise ValueError(f"phantom cue {kind}: unknown label {label!r}")
        if len(set(kinds)) < len(kinds) or len(set(labels)) < len(labels):
            raise ValueError(f"phantom cues {self.cues}: each cue and label at most once")
        if self.n_shift is not None and self.n_shift < self.n_test:
            raise ValueError(f"phantom n_shift {self.n_shift} is below n_test {self.n_test}")
        for name in ("cue_strength", "test_agreement"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"phantom {name} must be in [0, 1], got {value}")

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return tuple(f / n for f, n in zip(self.field_of_view_mm, self.volume_shape, strict=True))

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}

    def confounded(self) -> dict[str, str]:
        """``{label: cue kind}`` of the cues this configuration plants (none without
        confounders)."""
        return {label: kind for kind, label in self.cues} if self.confounders else {}

    def test_agreement_p(self) -> float:
        """P(a test case's cue agrees with its label): reversed unless ``test_agreement``."""
        if self.test_agreement is None:
            return 1.0 - self.cue_strength
        return self.test_agreement

    def to_json(self) -> dict:
        data = json.loads(json.dumps(asdict(self)))
        for name in ("test_agreement", "n_shift"):  # unset, they leave the cache key as it was
            if data[name] is None:
                del data[name]
        if not self.confounders:  # no cue is planted: the pairings change no voxel
            del data["cues"]
        return data

    def key(self) -> str:
        """Short hash of the configuration: the cache folder's name."""
        return config_key(self.to_json())


def parse_cues(value) -> tuple[tuple[str, str], ...]:
    """Pairings from ``"fat:LABEL,marker:LABEL"``, ``{cue: label}`` or ``[[cue, label], ...]``
    (a matrix spec's or ``--dataset-option cues=...``'s spelling)."""
    if isinstance(value, str):
        pairs = [item.split(":", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"phantom cues {value!r}: write CUE:LABEL[,CUE:LABEL]")
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = list(value)
    return tuple((str(kind).strip(), str(label).strip()) for kind, label in pairs)
