"""``ctbench faithfulness``'s work on a run folder: deletion and insertion curves and the
region-level faithfulness correlation (``ctbench.explain.faithfulness``) of the run's explainers
and of the reference maps, on the present labels of some volumes of a split, with bootstrap
intervals over volumes and paired differences; written to ``RUN/faithfulness/``."""

from __future__ import annotations

import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from ctbench.experiments.run_folder import RunFolder
from ctbench.explain import faithfulness as faith

CURVES = ("deletion_morf", "deletion_lerf", "insertion_morf", "insertion_lerf")
MEASURES = (*CURVES, "correlation")
"""Per (volume, present label): the areas of four curves, and the faithfulness correlation."""

REGIONS = ("cells", "organs")
DEFAULT_IMPUTER = {"cells": "blur", "organs": "region-mean"}
DEFAULT_FRACTION = {"cells": 0.1, "organs": 1 / 3}


def _dataset(config, split: str, regions: str):
    from ctbench.core.registry import default_registry
    from ctbench.data.loader import VolumeDataset
    from ctbench.data.preprocess import Preprocessing
    from ctbench.experiments.finished_run import dataset_of

    source = dataset_of(config)
    meta = default_registry().get("datasets", config.dataset).meta
    if regions == "organs" and not meta.get("organ_masks"):
        raise ValueError(
            f"--regions organs needs organ masks, which dataset {config.dataset!r} does not "
            "have; use --regions cells"
        )
    return VolumeDataset(
        source,
        split,
        preprocessing=Preprocessing(volume_shape=tuple(source.volume_shape)),
        with_organs=bool(meta.get("organ_masks")),
        with_findings=bool(meta.get("finding_masks")),
    )


def reference_maps(sample: dict, case, grid: tuple[int, ...], labels, seed: int) -> dict:
    """``{name: [1, M, *grid]}``: ``ideal`` (the lesion cells of each present label, where the
    dataset has lesion masks), ``organ_uniform`` (the cells of the organs holding each present
    label, where it has organ masks) and ``random`` (seeded noise)."""
    from ctbench.evaluate.localisation import mask_to_grid
    from ctbench.vocabulary import ORGANS

    shape = (1, len(labels), *grid)
    out = {}
    if "findings" in sample:
        out["ideal"] = mask_to_grid(sample["findings"] > 0, grid).float()[None]
    if "organs" in sample:
        located = case.located if case.located is not None else case.locations()
        organs = mask_to_grid(sample["organs"].bool(), grid)  # [K, *grid]
        uniform = torch.zeros(shape)
        for m, label in enumerate(labels):
            held = [ORGANS.index(o) for o in located.get(label, [])]
            if held:
                uniform[0, m] = organs[held].any(dim=0).float()
        out["organ_uniform"] = uniform
    generator = torch.Generator().manual_seed(seed)
    out["random"] = torch.rand(shape, generator=generator)
    return out


def volume_scores(model, x, maps, present, regions, *, imputer, steps, fraction, subsets, seed):
    """``({measure: [M'] areas or correlations}, {curve: [M', steps + 1]})`` for one volume's
    present labels and one map."""
    scores, curves = {}, {}
    for order in ("morf", "lerf"):  # insertion in one order is deletion in the other, backwards
        deletion = faith.perturbation_curves(
            model,
            x,
            maps,
            present,
            order=order,
            steps=steps,
            imputer=imputer,
            regions=regions,
            seed=seed,
        )
        other = "lerf" if order == "morf" else "morf"
        for name, mode, curve in (
            (f"deletion_{order}", "deletion", deletion),
            (f"insertion_{other}", "insertion", faith.insertion_from_deletion(deletion)),
        ):
            scores[name] = faith.curve_area(curve, mode)[0].numpy()
            curves[name] = curve[0].numpy()
    scores["correlation"] = faith.faithfulness_correlation(
        model,
        x,
        maps,
        present,
        subsets=subsets,
        fraction=fraction,
        imputer=imputer,
        regions=regions,
        seed=seed,
    )[0].numpy()
    return scores, curves


class _Tally:
    """What the volumes add up to: each map's scores per (volume, label), its summed curves
    and its seconds (explaining, for explainers, and the model calls)."""

    def __init__(self, n_cases: int, n_labels: int) -> None:
        self.shape = (n_cases, n_labels)
        self.scores: dict[str, dict[str, np.ndarray]] = {}
        self.curve_sums: dict[str, dict[str, np.ndarray]] = {}
        self.seconds: dict[str, float] = {}

    def time(self, name: str, began: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began

    def add(self, name: str, n: int, present: list[int], got: dict, curves: dict) -> None:
        table = self.scores.setdefault(name, {k: np.full(self.shape, np.nan) for k in MEASURES})
        for measure, values in got.items():
            table[measure][n, present] = values
        sums = self.curve_sums.setdefault(name, {})
        for measure, curve in curves.items():
            sums[measure] = sums.get(measure, 0) + (curve - curve[:, :1]).sum(0)
            sums[f"{measure}_pairs"] = sums.get(f"{measure}_pairs", 0) + len(curve)


def evaluate_run(
    run_folder: Path,
    *,
    explainers=None,
    cases: int = 8,
    split: str = "test",
    regions: str = "cells",
    imputer: str | None = None,
    steps: int | None = None,
    subsets: int = 32,
    references: bool = True,
    seed: int = 0,
    device="cpu",
    progress=None,
) -> dict:
    """The report (also written to ``RUN/faithfulness/<regions>-<imputer>.json`` with a
    figure of the mean curves beside it). A case that cannot be read is skipped and listed."""
    import ctbench
    from ctbench.core.cases import InvalidCaseError
    from ctbench.experiments.finished_run import trained_run
    from ctbench.runtime.progress import progress_bar
    from ctbench.runtime.storage import write_json

    imputer = _checked_imputer(regions, imputer)
    run_folder = Path(run_folder)
    config, names, model = trained_run(run_folder, explainers, device)
    dataset = _dataset(config, split, regions)
    labels = list(dataset.source.label_names)
    n_cases = min(cases, len(dataset))
    methods = {name: ctbench.create_explainer(name) for name in names}
    tally, skipped, began = _Tally(n_cases, len(labels)), [], time.perf_counter()
    settings = {"imputer": imputer, "fraction": DEFAULT_FRACTION[regions], "subsets": subsets}
    for n in progress_bar(range(n_cases), enabled=progress, desc="faithfulness", unit="volume"):
        try:
            sample = dataset[n]
        except InvalidCaseError as error:
            skipped.append({"case_id": dataset.case_ids[n], "error": str(error)})
            continue
        present = [int(m) for m in np.flatnonzero(sample["y"].numpy() > 0.5)]
        if not present:
            continue
        x = sample["x"][None].to(device)
        maps = _explained(model, x, methods, tally)
        if references:
            grid = tuple(next(iter(maps.values())).shape[2:])
            refs = reference_maps(sample, dataset.load_case(n), grid, labels, seed + n)
            maps |= {name: m.to(device) for name, m in refs.items()}
        ids, default_steps = _regions_of(sample, regions, device)
        for name, volume_maps in maps.items():
            start = time.perf_counter()
            got, curves = volume_scores(
                model, x, volume_maps, present, ids,
                steps=steps or default_steps, seed=seed, **settings,
            )  # fmt: skip
            tally.time(name, start)
            tally.add(name, n, present, got, curves)
    if not tally.scores:
        raise ValueError(f"no present label in the first {n_cases} {split} volumes")
    setup = {"run": str(run_folder), "split": split, "cases": n_cases, "regions": regions,
             "imputer": imputer, "seed": seed, "explainers": names}  # fmt: skip
    report = _report(setup, tally, names, seed) | {
        "seconds": time.perf_counter() - began,
        "skipped": skipped,
    }
    folder = RunFolder(run_folder).faithfulness
    write_json(folder / f"{regions}-{imputer}.json", report)
    plot_curves(report, folder / f"{regions}-{imputer}.png")
    report["table"] = table_lines(report)
    return report


def _checked_imputer(regions: str, imputer: str | None) -> str:
    """The imputer of ``regions`` (its default when None); unknown names are a ValueError."""
    if regions not in REGIONS:
        raise ValueError(f"unknown regions {regions!r}; choose {', '.join(REGIONS)}")
    imputer = imputer or DEFAULT_IMPUTER[regions]
    if imputer not in faith.IMPUTERS:
        raise ValueError(f"unknown imputer {imputer!r}; choose {', '.join(faith.IMPUTERS)}")
    return imputer


def _explained(model, x, methods: dict, tally: _Tally) -> dict:
    """Every explainer's maps of one volume, timed into ``tally``."""
    maps = {}
    with torch.no_grad():
        for name, method in methods.items():
            start = time.perf_counter()
            maps[name] = method(model, x).float()
            tally.time(name, start)
    return maps


def _regions_of(sample: dict, regions: str, device) -> tuple:
    """``(region ids, default steps)``: the organs (one region a step, "no organ" included)
    or None for the map's own cells (10 steps)."""
    from ctbench.vocabulary import ORGANS

    if regions != "organs":
        return None, 10
    return faith.organ_regions(sample["organs"][None]).to(device), len(ORGANS) + 1


def _report(setup: dict, tally: _Tally, names: list[str], seed: int) -> dict:
    """The report's numbers: each map's bootstrap summaries, the paired differences between
    explainers, the mean curves and the seconds per map."""
    from ctbench.evaluate.bootstrap import bootstrap_mean, paired_difference

    scores = tally.scores
    return {
        **setup,
        "maps": {
            name: {k: bootstrap_mean(v, seed=seed).to_json() for k, v in per.items()}
            for name, per in scores.items()
        },
        "differences": {
            f"{a} - {b}": {
                k: paired_difference(scores[a][k], scores[b][k], seed=seed) for k in MEASURES
            }
            for a, b in combinations(names, 2)
        },
        "mean_curves": {
            name: {k: (sums[k] / sums[f"{k}_pairs"]).tolist() for k in CURVES if k in sums}
            for name, sums in tally.curve_sums.items()
        },
        "seconds_per_map": tally.seconds,
    }


def table_lines(report: dict) -> list[str]:
    """One row per map: mean [95% interval] of each measure."""
    from tabulate import tabulate

    def cell(s: dict) -> str:
        return f"{s['mean']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}]"

    rows = [[name, *(cell(per[k]) for k in MEASURES)] for name, per in report["maps"].items()]
    for pair, per in report["differences"].items():
        rows.append(
            [
                pair,
                *(
                    f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
                    for d in (per[k] for k in MEASURES)
                ),
            ]
        )
    return tabulate(rows, headers=["map", *MEASURES], tablefmt="github").splitlines()


def plot_curves(report: dict, path: Path) -> Path:
    """The mean change of the logit per curve (deletion and insertion, most and least relevant
    first), one line per map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ctbench.runtime.storage import atomic_open

    kinds = CURVES
    figure, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.6), squeeze=False)
    for name, curves in report["mean_curves"].items():
        for axis, kind in zip(axes[0], kinds, strict=True):
            curve = curves[kind]
            axis.plot(np.linspace(0, 1, len(curve)), curve, marker=".", label=name)
    for axis, kind in zip(axes[0], kinds, strict=True):
        axis.set_title(kind.replace("_", ", "))
        axis.set_xlabel(f"share of {report['regions']} changed")
        axis.axhline(0, color="grey", linewidth=0.8)
    axes[0][0].set_ylabel("logit change")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"faithfulness ({report['regions']}, {report['imputer']} imputer)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=90)
    plt.close(figure)
    return path
