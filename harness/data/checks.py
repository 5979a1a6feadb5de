"""Checks of a dataset before any training: its options, every case once, non-empty splits.

``ctbench run`` and ``ctbench data check`` share them: bad cases are skipped and listed, never
allowed to stop a long run, and an empty split is one error before training.
"""

from __future__ import annotations


def check_dataset_options(name: str, options: dict) -> None:
    """One clear error for a folder given to a dataset that reads none, or none given to one
    that does (the registration's ``reads_folder``)."""
    from ctbench.core.registry import default_registry

    reads_folder = bool(default_registry().get("datasets", name).meta.get("reads_folder"))
    if "data_root" in options and not reads_folder:
        raise ValueError(f"{name} takes no --data-root: it reads no folder")
    if reads_folder and options.get("data_root") is None:
        raise ValueError(f"dataset {name!r} reads a folder: give --data-root PATH")


def check_cases(datasets: dict, progress: bool | None, job=None) -> list[dict[str, str]]:
    """Load every case once: validate it, cache its model-ready volume and build its allowed
    regions when needed; skip and list the cases that fail, so that a bad file never stops a
    long run. The dataset's own problems (``source.problems``, found while indexing its
    files) come first in the list. Cases the caches serve whole (``VolumeDataset.decodes``)
    are not decoded again. Under torchrun each rank checks a shard and every rank learns the
    whole list."""
    from ctbench.core.cases import InvalidCaseError
    from ctbench.runtime.distributed import Distributed, shard
    from ctbench.runtime.progress import progress_bar

    job = job or Distributed()
    skipped = []
    for name, dataset in datasets.items():
        cache, regions = dataset.volume_cache, dataset.allowed_regions
        for index in progress_bar(
            shard(len(dataset), job), enabled=progress, desc=f"check {name}", unit="case"
        ):
            case_id = dataset.case_ids[index]
            try:
                if not dataset.decodes(case_id):  # the caches serve it: checked before
                    continue
                case = dataset.load_case(index)
                if cache is not None and not cache.has(case_id):
                    cache.store(case)
                if regions is not None:
                    regions(case)
            except (InvalidCaseError, OSError, ValueError) as error:
                skipped.append({"split": name, "case_id": case_id, "error": str(error)})
    skipped = [case for part in job.all_gather(skipped) for case in part]
    source = next(iter(datasets.values())).source
    # what the dataset's index found wrong (a label row with no volume, duplicated names)
    skipped = [{"split": "-", **problem} for problem in getattr(source, "problems", [])] + skipped
    for name, dataset in datasets.items():
        bad = {case["case_id"] for case in skipped if case["split"] == name}
        dataset.case_ids = [case_id for case_id in dataset.case_ids if case_id not in bad]
    return skipped


class EmptySplitError(ValueError):
    """A split has no usable case: nothing to train on, select by or report."""


def check_splits(datasets: dict, dataset_name: str, skipped: list[dict[str, str]]) -> None:
    """Every split (train, valid, test) holds at least one usable case; otherwise one error
    naming the dataset, each empty split and how many of its cases were skipped."""
    empty = [name for name, dataset in datasets.items() if len(dataset.case_ids) == 0]
    if not empty:
        return
    parts = []
    for name in empty:
        lost = sum(case["split"] == name for case in skipped)
        parts.append(f"{name} ({lost} case(s) skipped)" if lost else f"{name} (no case)")
    raise EmptySplitError(
        f"dataset {dataset_name!r}: empty split(s): {', '.join(parts)}; every split needs at "
        "least one usable case (training, model selection and the test table)"
    )
