"""The ``phantom`` dataset: procedural chest CT with voxel truth, reports and planted cues.

Each case is generated independently from ``(seed, split, index)``: normal anatomy in HU
(``anatomy``), findings drawn inside their organs with masks (``findings``), a free-text
report (``reports``) and, when asked, confounder cues that predict a label in train and valid
but are reversed in the shifted test split (by default thick body-wall fat with aortic
calcification and arms down with consolidation; ``config.DEFAULT_CUES``). Generated once
into a cache folder keyed by the configuration and reused after (``store``); a case can be
rendered again with one cue or finding changed (``PhantomSource.counterfactual``).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import ctbench
import numpy as np
from ctbench.core.cases import SPLITS, Case, Finding, InvalidCaseError
from ctbench.runtime.storage import default_cache_dir

from .anatomy import add_noise, draw_anatomy, paint_arms, render_anatomy
from .config import DEFAULT_CUES, FINDING_LABELS, PRESETS, PhantomConfig
from .findings import (
    SPLIT_PREFIX,
    CasePlan,
    anatomy_modifiers,
    case_id,
    finding_streams,
    has_cue,
    paint_findings,
    plan_case,
    with_cue_toggled,
    without_finding,
)
from .geometry import Grid, ellipsoid
from .reports import write_report
from .store import CaseStore

MARKER_HU = 1800.0

__all__ = ["FINDING_LABELS", "PRESETS", "PhantomConfig", "PhantomSource", "generate_case"]


def generate_case(config: PhantomConfig, split: str, index: int) -> Case:
    """Plan and render one case: HU volume, organ and finding masks, report."""
    return render_case(config, plan_case(config, split, index))


def render_case(config: PhantomConfig, plan: CasePlan) -> Case:
    """Render one planned case: HU volume, organ and finding masks, report."""
    grid = Grid(config.volume_shape, config.spacing_mm)
    modifiers = anatomy_modifiers(plan)
    anatomy = draw_anatomy(
        np.random.default_rng(plan.seeds["anatomy"]),
        plan.fat_mm,
        modifiers["heart_scale"],
        marker=plan.marker,
    )
    anatomy.pericardial_effusion_mm = modifiers["pericardial_effusion_mm"]
    texture, noise = (
        np.random.default_rng(np.random.SeedSequence(plan.seeds["paint"], spawn_key=(k,)))
        for k in (0, 1)
    )  # own streams: a finding or a cue more or less leaves the texture and noise as they are
    rendered = render_anatomy(anatomy, grid, texture)
    masks = paint_findings(plan, anatomy, grid, rendered, finding_streams(plan))
    for electrode in anatomy.markers:
        rendered.hu[marker_mask(grid, electrode)] = MARKER_HU
    if plan.arms:
        paint_arms(rendered.hu, anatomy, grid)
    volume = add_noise(rendered.hu, anatomy, noise)
    report = write_report(plan, np.random.default_rng(plan.seeds["report"]))
    findings = [
        Finding(f.label, f.organs, mask, {k: v for k, v in f.details.items() if k != "u"})
        for f, mask in zip(plan.findings, masks, strict=True)
    ]
    meta = {
        "split": plan.split,
        "fat_mm": round(float(plan.fat_mm), 2),
        "marker": plan.marker,
        "arms_down": plan.arms,
        "noise_hu": round(float(anatomy.noise_sigma), 2),
        "generator_version": config.version,
    }
    return Case(
        plan.case_id,
        volume,
        config.spacing_mm,
        plan.label_vector(),
        report,
        rendered.organs,
        findings,
        meta,
    )


def marker_mask(grid: Grid, centre) -> np.ndarray:
    """One ECG electrode's voxels: a metal snap of 6 mm radius (one voxel at least) on the
    skin."""
    radius = max(6.0, 0.6 * max(grid.spacing))
    return ellipsoid(grid, centre, (radius, radius, radius))


SHIFTS = ("iid", "balanced")
"""The test splits beside the reversed one: the same test cases (labels, findings, patients)
with their cues drawn again to agree as in training (``iid``) or by chance (``balanced``)."""

COUNTERFACTUALS = ("cue", "finding")
"""What :meth:`PhantomSource.counterfactual` changes: the label's cue, or its finding."""


PRETEXT_SEED = 1000
"""Phantom seed of the pretext pool; benchmark runs use other seeds (0 by default)."""


class PhantomSource:
    """The phantom as a :class:`ctbench.core.cases.CaseSource`, cached on disk."""

    name = "phantom"
    label_names = FINDING_LABELS

    def __init__(
        self,
        preset: str = "default",
        *,
        seed: int = 0,
        confounders: bool = False,
        cache_dir: str | Path | None = None,
        **overrides,
    ) -> None:
        self.config = PhantomConfig.from_preset(
            preset, seed=seed, confounders=confounders, **overrides
        )
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.folder = root / f"phantom-{self.config.preset}-{self.config.key()}"
        self.store = CaseStore(self.folder)
        self._plans: dict[str, CasePlan] = {}
        self._ids = {
            split: [case_id(split, i) for i in range(n)]
            for split, n in self.config.split_sizes().items()
        }
        self.confounded_labels = tuple(self.config.confounded())
        """The labels this configuration plants a cue for (none without confounders)."""
        self._write_index()

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        return self.config.volume_shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.config.spacing_mm

    def case_ids(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        return list(self._ids[split])

    def plan(self, case_id: str) -> CasePlan:
        """The case's labels, findings and cues, without rendering a voxel."""
        if case_id not in self._plans:
            split, index = self._parse(case_id)
            self._plans[case_id] = plan_case(self.config, split, index)
        return self._plans[case_id]

    def load(self, case_id: str) -> Case:
        """The case from the cache, generating and storing it on first use."""
        plan = self.plan(case_id)
        if not self.store.has(case_id):
            case = render_case(self.config, plan)
            self.store.save(case)
            return case
        return self.store.load(case_id, plan.label_vector())

    def shift_source(self, kind: str) -> PhantomSource:
        """This dataset's test split with its cues agreeing as :data:`SHIFTS` says (no training
        or validation cases; ``n_shift`` test cases, the first ``n_test`` of them this
        source's own); only the cues differ from this source's test cases."""
        if kind not in SHIFTS:
            raise ValueError(f"unknown shift {kind!r}; choose {', '.join(SHIFTS)}")
        named = ("preset", "seed", "confounders", "version")  # given by name, or fixed
        overrides = {
            f.name: getattr(self.config, f.name) for f in fields(self.config) if f.name not in named
        }
        overrides |= {"n_train": 0, "n_valid": 0, "n_shift": None}
        overrides["n_test"] = self.config.n_shift or self.config.n_test
        overrides["test_agreement"] = self.config.cue_strength if kind == "iid" else 0.5
        return PhantomSource(
            self.config.preset,
            seed=self.config.seed,
            confounders=self.config.confounders,
            cache_dir=self.folder.parent,
            **overrides,
        )

    def cue_present(self, case_id: str, label: str) -> bool:
        """Whether the case carries ``label``'s planted cue (``config.CUE_KINDS``)."""
        return has_cue(self.plan(case_id), self._cue_of(label))

    def counterfactual(self, case_id: str, label: str, change: str) -> Case:
        """The case rendered again with ``label``'s cue toggled (``change="cue"``) or its
        finding removed (``"finding"``, for a positive case): the same seeds, so every other
        voxel is as it was (tests/test_counterfactuals.py). Not cached: a render is cheap."""
        plan = self.plan(case_id)
        if change == "cue":
            changed = with_cue_toggled(plan, self._cue_of(label))
        elif change == "finding":
            changed = without_finding(plan, label)
        else:
            choices = ", ".join(COUNTERFACTUALS)
            raise ValueError(f"unknown counterfactual {change!r}; choose {choices}")
        return render_case(self.config, changed)

    def _cue_of(self, label: str) -> str:
        confounded = self.config.confounded()
        if label not in confounded:
            planted = ", ".join(confounded) or "none (no --confounders)"
            raise ValueError(f"{label} has no planted cue; confounded: {planted}")
        return confounded[label]

    def pretext_source(self) -> PhantomSource:
        """The pool a pretrained start is built from (``ctbench.train.pretraining``): this preset's
        training volumes of :data:`PRETEXT_SEED`, with no confounder and no valid or test split,
        so that no benchmark volume is ever seen by the pretext."""
        if self.config.seed == PRETEXT_SEED:
            raise ValueError(
                f"phantom seed {PRETEXT_SEED} is the pretext pool; a benchmark on it cannot "
                "start from the pretext (use another seed, or --start random)"
            )
        return PhantomSource(
            self.config.preset,
            seed=PRETEXT_SEED,
            cache_dir=self.folder.parent,
            n_valid=0,
            n_test=0,
        )

    def materialise(self, progress: bool | None = None, processes: int | None = None) -> int:
        """Generate every case not yet cached; returns how many were generated.

        Cases are generated by ``processes`` processes (default: one per usable core, one when
        fewer than :data:`CASES_PER_PROCESS` cases a process are missing or this process may
        not start children); each case comes from its own seed, so the bytes are the same
        however many generate them. ``progress=None`` shows a bar only on a terminal
        (``ctbench.runtime.progress``).
        """
        import multiprocessing

        from ctbench.runtime.progress import progress_bar
        from ctbench.runtime.resources import usable_cores

        missing = [cid for split in SPLITS for cid in self._ids[split] if not self.store.has(cid)]
        if processes is None:
            processes = min(usable_cores(), len(missing) // CASES_PER_PROCESS)
            if multiprocessing.current_process().daemon:
                processes = 1  # a daemonic process may not start children
        bar = progress_bar(
            None, total=len(missing), enabled=progress, desc="phantom", unit="volume"
        )
        with bar:
            if processes <= 1:
                for cid in missing:
                    self.load(cid)
                    bar.update(1)
                return len(missing)
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")  # no fork of a threaded process
            with ProcessPoolExecutor(
                processes, mp_context=context, initializer=_start_worker, initargs=(self,)
            ) as pool:
                for _ in pool.map(_generate_in_worker, missing, chunksize=4):
                    bar.update(1)
        return len(missing)

    def _parse(self, case_id: str) -> tuple[str, int]:
        for split, prefix in SPLIT_PREFIX.items():
            if case_id.startswith(prefix) and case_id[len(prefix) :].isdigit():
                index = int(case_id[len(prefix) :])
                if index < len(self._ids[split]):
                    return split, index
        raise InvalidCaseError(f"{case_id}: not a case of phantom {self.folder.name}")

    def _write_index(self) -> None:
        from ctbench.runtime.storage import write_json, write_text

        index = self.folder / "index.csv"
        if index.exists():
            return
        rows = ["case_id,split," + ",".join(self.label_names)]
        for split in SPLITS:
            for cid in self._ids[split]:
                labels = self.plan(cid).label_vector().astype(int)
                rows.append(f"{cid},{split}," + ",".join(map(str, labels)))
        write_json(self.folder / "config.json", self.config.to_json())
        write_text(index, "\n".join(rows) + "\n")


CASES_PER_PROCESS = 32
"""Fewer missing cases than this a process are generated in this process (starting one costs
about a second)."""

_WORKER_SOURCE: PhantomSource | None = None


def _start_worker(source: PhantomSource) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source


def _generate_in_worker(case_id: str) -> str:
    """Generate and cache one case in a :meth:`PhantomSource.materialise` worker."""
    _WORKER_SOURCE.load(case_id)
    return case_id


def phantom(preset: str = "default", **options) -> PhantomSource:
    """Factory for ``create_dataset("phantom", preset=..., seed=..., confounders=...)``."""
    return PhantomSource(preset, **options)


@ctbench.hookimpl
def register_datasets(register):
    register(
        "phantom",
        phantom,
        description="Procedural chest CT phantom: voxel truth, reports, optional confounders",
        default=True,  # the dataset every command uses when none is named
        presets={name: preset["run"] for name, preset in PRESETS.items()},
        labels=FINDING_LABELS,
        organ_masks=True,
        finding_masks=True,
        pretext=True,  # pretext_source(): runs can start from ctbench pretrain's weights
        # the labels whose cue --confounders plants by default (body-wall fat, arms down;
        # dataset option cues= changes them): the confounders table shows their AUROC
        confounded_labels=tuple(label for _, label in DEFAULT_CUES),
    )
