"""``check_dataset`` and its rules (``ctbench.core.cases.CaseSource``, ``ctbench.core.contracts``).

The dataset is built as a run builds it (``create_dataset(name, preset=..., **options)``), its
``materialise`` called when it has one, and the first case of every split loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from ctbench.core.cases import SPLITS, Case
from ctbench.core.contracts import declared
from ctbench.testing.rules import registered, rule_table, run_checks


@dataclass
class DatasetCase:
    """A built dataset, what its registration declares, and its first case of each split."""

    factory: Callable[..., Any]
    options: dict = field(default_factory=dict)
    declares: dict = field(default_factory=lambda: declared("datasets", {}))

    @cached_property
    def source(self) -> Any:
        source = self.factory(**self.options)
        if hasattr(source, "materialise"):
            source.materialise(progress=False)
        return source

    @cached_property
    def cases(self) -> dict[str, Case]:
        return {split: self.source.load(self.source.case_ids(split)[0]) for split in SPLITS}


def check_members(case: DatasetCase) -> None:
    """``name``, ``label_names`` (non-empty, unique strings) and ``volume_shape`` (3 positive
    ints)."""
    source = case.source
    assert isinstance(source.name, str) and source.name, "name must be a non-empty string"
    names = tuple(source.label_names)
    assert names and all(isinstance(n, str) and n for n in names), "label_names must be strings"
    assert len(set(names)) == len(names), "label_names repeat a name"
    shape = tuple(source.volume_shape)
    assert len(shape) == 3 and all(isinstance(n, int) and n > 0 for n in shape), (
        f"volume_shape {shape} is not three positive ints"
    )


def check_splits(case: DatasetCase) -> None:
    """Every split has cases; no case is in two splits; every case id can name a file."""
    from ctbench.runtime.storage import UnsafeNameError, safe_name

    seen: dict[str, str] = {}
    for split in SPLITS:
        ids = case.source.case_ids(split)
        assert isinstance(ids, list) and ids, f"split {split!r} has no case"
        for case_id in ids:
            assert case_id not in seen, f"{case_id!r} is in {seen[case_id]} and {split}"
            seen[case_id] = split
            try:
                safe_name(case_id, "case id")
            except UnsafeNameError as error:
                raise AssertionError(str(error)) from error


def check_cases(case: DatasetCase) -> None:
    """``load`` gives a Case: its id, an int16 HU volume ``[S, Y, X]`` that passes the core's
    checks, a positive spacing, bool labels ``[M]``, and a report or its own placement (so
    PARTITION can place its labels)."""
    from ctbench.core.cases import validate_volume

    for split, loaded in case.cases.items():
        assert isinstance(loaded, Case), f"{split}: load returned {type(loaded).__name__}"
        assert loaded.case_id == case.source.case_ids(split)[0], f"{split}: case id differs"
        assert isinstance(loaded.volume, np.ndarray) and loaded.volume.dtype == np.int16, (
            f"{loaded.case_id}: volume must be int16 HU, got {getattr(loaded.volume, 'dtype', '?')}"
        )
        validate_volume(loaded.volume, loaded.case_id)
        spacing = tuple(float(s) for s in loaded.spacing)
        assert len(spacing) == 3 and min(spacing) > 0, f"{loaded.case_id}: spacing {spacing}"
        labels = np.asarray(loaded.labels)
        assert labels.dtype == bool and labels.shape == (len(case.source.label_names),), (
            f"{loaded.case_id}: labels must be bool [M], got {labels.dtype} {labels.shape}"
        )
        assert loaded.report or loaded.located is not None, (
            f"{loaded.case_id}: neither a report nor its own placement (Case.located)"
        )


def check_declared_masks(case: DatasetCase) -> None:
    """``organ_masks=True``: cases carry bool organ masks of the volume's shape;
    ``finding_masks=True``: validation or test cases carry bool finding masks of the volume's
    shape whose labels are the dataset's."""
    for loaded in case.cases.values():
        if case.declares["organ_masks"]:
            assert loaded.organs, f"{loaded.case_id}: declares organ_masks but has none"
            for organ, mask in loaded.organs.items():
                assert mask.dtype == bool and mask.shape == loaded.volume.shape, (
                    f"{loaded.case_id}: organ mask {organ} is {mask.dtype} {mask.shape}"
                )
        for finding in loaded.findings:
            assert finding.label in case.source.label_names, (
                f"{loaded.case_id}: a finding of unknown label {finding.label!r}"
            )
            if finding.mask is not None:
                assert finding.mask.dtype == bool and finding.mask.shape == loaded.volume.shape, (
                    f"{loaded.case_id}: the mask of {finding.label} is {finding.mask.dtype} "
                    f"{finding.mask.shape}"
                )
    if case.declares["finding_masks"]:
        held_out = [case.cases["valid"], case.cases["test"]]
        assert any(f.mask is not None for c in held_out for f in c.findings), (
            "declares finding_masks but the first validation and test cases carry none"
        )


def check_declared_pretext(case: DatasetCase) -> None:
    """``pretext=True``: the source offers ``pretext_source()``."""
    if case.declares["pretext"]:
        assert callable(getattr(case.source, "pretext_source", None)), (
            "declares pretext=True without pretext_source()"
        )


def check_declared_presets(case: DatasetCase) -> None:
    """A table of presets gives each one known run defaults (a recipe of
    ``TRAINING_RECIPES`` and keys of ``PRESET_KEYS``), and the checked preset is one of them."""
    from ctbench.experiments.run_config import run_defaults

    presets = case.declares["presets"]
    if presets:
        assert case.options["preset"] in presets, (
            f"preset {case.options['preset']!r} is not among the declared presets "
            f"{', '.join(presets)}"
        )
    if isinstance(presets, dict):
        for name, entry in presets.items():
            assert isinstance(entry, dict), f"presets[{name!r}] must be a dict of run defaults"
            try:
                run_defaults(entry, f"presets[{name!r}]")
            except ValueError as error:
                raise AssertionError(str(error)) from None


def check_deterministic(case: DatasetCase) -> None:
    """Loading a case again gives the same volume and labels."""
    first = case.cases["train"]
    again = case.source.load(first.case_id)
    assert np.array_equal(first.volume, again.volume), "the volume differs between loads"
    assert np.array_equal(first.labels, again.labels), "the labels differ between loads"


DATASET_CHECKS: dict[str, Callable[[DatasetCase], None]] = rule_table(
    check_members,
    check_splits,
    check_cases,
    check_declared_masks,
    check_declared_pretext,
    check_declared_presets,
    check_deterministic,
)


def dataset_case(
    name_or_factory: str | Callable[..., Any], *, preset: str = "tiny", **options: Any
) -> DatasetCase:
    """A registered name (built through its registration; ``options`` such as ``data_root``
    go to its factory) or a factory (``declares=`` gives its declarations)."""
    factory, declares = registered("datasets", name_or_factory, options.pop("declares", {}))
    return DatasetCase(factory, {"preset": preset, **options}, declares)


def check_dataset(name_or_factory: str | Callable[..., Any], **options: Any) -> None:
    """Run every dataset rule (on the ``tiny`` preset unless ``preset=`` says otherwise); the
    first failure raises ``AssertionError`` naming it."""
    run_checks("dataset", DATASET_CHECKS, dataset_case(name_or_factory, **options))
