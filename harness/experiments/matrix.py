"""Running a matrix: its cells as ordinary run folders, in order, in parallel or on Slurm.

``DIR/matrix.json`` (``matrix-shard-I-of-N.json`` for one shard) records the spec, every cell's
options, folder, status and timings; it is rewritten atomically after every cell, so a killed
matrix keeps what finished. Rules (docs/matrices.md): a finished cell (its folder has
``metrics.json``) is skipped, an unfinished one is resumed; a failing cell records its error and
log (``DIR/logs/<folder>.log``) and the others go on; a spec that changed since the last run of
the same DIR says which cells it adds and drops, and drops none without ``replace``.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctbench.experiments.matrix_spec import Cell, MatrixSpec, shard_cells
from ctbench.experiments.run_folder import RunFolder

LAUNCHERS = ("local", "slurm", "submitit-local")
"""``local``: this machine (``--jobs`` processes); ``slurm``: one submitit job per cell;
``submitit-local``: submitit's local executor, the slurm path without a cluster."""


class SpecChangedError(RuntimeError):
    """The spec no longer has cells that an earlier run of the same folder recorded."""


@dataclass
class MatrixPlan:
    """The cells of this run of the matrix and the state file they are recorded in."""

    spec: MatrixSpec
    cells: list[Cell]
    out: Path
    shard: tuple[int, int] | None = None

    @property
    def state_path(self) -> Path:
        if self.shard is None:
            return self.out / "matrix.json"
        return self.out / f"matrix-shard-{self.shard[0]}-of-{self.shard[1]}.json"


def plan_matrix(
    spec: MatrixSpec, cells: list[Cell], out: Path, shard: tuple[int, int] | None = None
) -> MatrixPlan:
    return MatrixPlan(spec, shard_cells(cells, shard), Path(out), shard)


def previous_records(plan: MatrixPlan) -> dict[str, dict[str, Any]]:
    """The state file's record of each cell folder from the last run here, in its order
    (none when there is no state)."""
    if not plan.state_path.is_file():
        return {}
    return {cell["folder"]: cell for cell in read_state(plan.state_path)["cells"]}


def spec_changes(
    plan: MatrixPlan, before: dict[str, dict[str, Any]] | None = None
) -> tuple[list[str], list[str]]:
    """``(added, dropped)`` cell folders against the last run's records (``before``, read
    from the state file when not given; both empty when there is none)."""
    if not plan.state_path.is_file():
        return [], []
    before = previous_records(plan) if before is None else before
    now = [c.folder for c in plan.cells]
    return [f for f in now if f not in before], [f for f in before if f not in now]


CELL_ACTIONS = {"finished": "skip", "unfinished": "resume", "new": "new"}
"""What the matrix does with a cell, by its run folder's state
(:meth:`ctbench.experiments.run_folder.RunFolder.state`)."""


def cell_action(out: Path, cell: Cell) -> str:
    """``skip`` (finished), ``resume`` (started) or ``new``."""

    return CELL_ACTIONS[RunFolder(out / cell.folder).state()]


def run_matrix(
    plan: MatrixPlan,
    *,
    jobs: int = 1,
    devices: list[str] | None = None,
    launcher: str = "local",
    replace: bool = False,
    track: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every unfinished cell of ``plan``; returns the state (also in the state file).

    The state file's lock (``ctbench.runtime.locks``) is held throughout: a second
    ``ctbench matrix`` on the same folder (and shard) is refused, naming the holder; shards
    lock their own."""
    from ctbench.runtime.locks import folder_lock

    with folder_lock(plan.out, name=plan.state_path.stem, what="matrix", log=log):
        return _run_locked(plan, jobs, devices, launcher, replace, track, log)


RECORDED = ("started", "seconds", "run_seconds", "overhead_seconds", "log", "error", "job_id")
"""What a cell's record keeps from the run of the matrix that finished it."""


def _run_locked(plan, jobs, devices, launcher, replace, track, log) -> dict[str, Any]:
    if devices:  # one cell per device at a time: the devices decide how many run at once
        jobs = len(devices)
    before = previous_records(plan)  # read once: what changed, and the skipped cells' times
    added, dropped = spec_changes(plan, before)
    if dropped and not replace:
        raise SpecChangedError(
            f"{plan.state_path}: the spec changed since the last run here: it drops "
            f"{len(dropped)} cell(s) ({', '.join(dropped)}) and adds {len(added)}. Their "
            "folders stay, but tables would mix two specs: use another --out, or --replace to "
            "record the new spec (the dropped folders are then no longer part of this matrix)"
        )
    if added and plan.state_path.is_file():
        log(f"the spec changed: it adds {len(added)} cell(s): {', '.join(added)}")
    began = time.perf_counter()
    state = {
        "spec": plan.spec.to_json(),
        "spec_source": plan.spec.source,
        "shard": None if plan.shard is None else f"{plan.shard[0]}/{plan.shard[1]}",
        "launcher": launcher,
        "jobs": jobs,
        "cells": [
            {**cell.to_json(), "status": "pending", "action": cell_action(plan.out, cell)}
            for cell in plan.cells
        ],
    }
    pending = []
    for record, cell in zip(state["cells"], plan.cells, strict=True):
        if record["action"] == "skip":  # finished earlier: keep when and how long it took
            record["status"] = "skipped"
            earlier = before.get(cell.folder, {})
            record |= {key: earlier[key] for key in RECORDED if key in earlier}
        else:
            pending.append((record, _payload(plan.out, cell, record["action"], track)))
    _save(plan, state, began)
    log(
        f"{len(plan.cells)} cells: {len(pending)} to run, {len(plan.cells) - len(pending)} finished"
    )

    def finished(record: dict[str, Any], result: dict[str, Any]) -> None:
        record.update(result)
        done = sum(r["status"] in ("done", "failed") for r in state["cells"])
        extra = f": {result['error']}" if result["status"] == "failed" else ""
        log(f"[{done}/{len(pending)}] {result['status']} {record['folder']} "
            f"({result['seconds']:.1f} s){extra}")  # fmt: skip
        _save(plan, state, began)

    if launcher == "local" and jobs == 1:
        for record, payload in pending:
            record["status"] = "running"
            finished(record, run_cell(payload))
    elif launcher == "local":
        _run_in_processes(pending, jobs, devices, finished)
    else:
        _run_with_submitit(pending, plan, launcher, finished)
    _save(plan, state, began)
    return state


def summarise(cells: list[dict[str, Any]]) -> dict[str, int]:
    return {
        status: sum(c.get("status") == status for c in cells)
        for status in ("done", "failed", "skipped", "pending")
    }


def _payload(out: Path, cell: Cell, action: str, track: str | None) -> dict[str, Any]:
    return {
        "config": cell.config.to_json(),
        "folder": str(out / cell.folder),
        "log": str(out / "logs" / f"{cell.folder}.log"),
        "resume": action == "resume",
        "track": track,
    }


def _save(plan: MatrixPlan, state: dict[str, Any], began: float) -> None:
    from ctbench.runtime.storage import write_json

    state["wall_seconds"] = time.perf_counter() - began
    state["summary"] = summarise(state["cells"])
    write_json(plan.state_path, state)


def run_cell(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in this process; never raises: a failure is a record with its error.

    Module level and JSON in, JSON out, so that worker processes and submitit jobs run it.
    """
    from ctbench.experiments.run_config import RunConfig
    from ctbench.experiments.runs import execute_run

    log_path = Path(payload["log"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    began = time.perf_counter()
    with log_path.open("a") as log_file:

        def log(message: str) -> None:
            log_file.write(message + "\n")
            log_file.flush()

        log(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {payload['folder']}")
        try:
            metrics = execute_run(
                RunConfig.from_json(payload["config"]),
                payload["folder"],
                resume=payload["resume"],
                progress=False,
                log=log,
            )
            if payload.get("track"):
                from ctbench.experiments.tracking import track_run

                track_run(payload["folder"], payload["track"])
            run_seconds = metrics["timing"]["total"]
            result = {"status": "done", "error": None, "run_seconds": run_seconds}
        except Exception as error:  # a cell's failure is recorded; the matrix goes on
            log(traceback.format_exc())
            error_text = f"{type(error).__name__}: {error}"
            result = {"status": "failed", "error": error_text, "run_seconds": None}
    seconds = time.perf_counter() - began
    overhead = None if result["run_seconds"] is None else seconds - result["run_seconds"]
    return {
        **result,
        "log": str(log_path),
        "started": started,
        "seconds": seconds,
        "overhead_seconds": overhead,
    }


def _init_worker(threads: int, device_queue) -> None:
    """A worker process's share of the machine: ``threads`` CPU threads, one GPU if given."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if device_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device_queue.get()
    import torch

    torch.set_num_threads(threads)


def _run_in_processes(pending, jobs: int, devices: list[str] | None, finished) -> None:
    """``jobs`` spawned worker processes, the CPU threads split between them; with
    ``devices`` (one per job) each worker sees one of them (CUDA_VISIBLE_DEVICES)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    queue = None
    if devices:
        queue = context.Queue()
        for device in devices:
            queue.put(device)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(threads, queue)
    ) as pool:
        futures: dict[Future, tuple[dict, dict]] = {}
        for record, payload in pending:
            record["status"] = "running"
            futures[pool.submit(run_cell, payload)] = record, payload
        for future in as_completed(futures):
            record, payload = futures[future]
            try:
                result = future.result()
            except Exception as error:  # the worker died (killed, out of memory)
                result = _died(payload["log"], error)
            finished(record, result)


def _run_with_submitit(pending, plan: MatrixPlan, launcher: str, finished) -> None:
    """One submitit job per cell (Slurm, or submitit's local executor); waits for them all."""
    try:
        import submitit
    except ImportError as error:
        raise RuntimeError(
            f"--launcher {launcher} needs submitit: pip install 'ctbench[slurm]'"
        ) from error
    cluster = "slurm" if launcher == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=plan.out / "submitit", cluster=cluster)
    executor.update_parameters(**{"name": f"ctbench-{plan.spec.name}", **plan.spec.slurm})
    jobs = []
    for record, payload in pending:
        record["status"] = "running"
        job = executor.submit(run_cell, payload)
        record["job_id"] = str(job.job_id)
        jobs.append((record, job))
    for record, job in jobs:
        try:
            result = job.result()
        except Exception as error:  # the job failed outside run_cell (killed, time limit)
            result = _died(str(job.paths.stderr), error)
        finished(record, result)


def _died(log: str, error: Exception) -> dict[str, Any]:
    """The record of a cell whose process died before run_cell could record anything."""
    return {
        "status": "failed",
        "error": f"the cell's process died: {type(error).__name__}: {error}",
        "run_seconds": None,
        "overhead_seconds": None,
        "seconds": 0.0,
        "log": log,
    }


def find_states(out: Path) -> list[dict[str, Any]]:
    """Every state file in ``out`` (the whole matrix's and each shard's); none when ``out`` is
    not a matrix's folder."""
    return [read_state(path) for path in sorted(Path(out).glob("matrix*.json"))]


def read_state(path: Path) -> dict[str, Any]:
    """One state file, checked: a spec, and cells each naming a folder inside the matrix's
    folder. Anything else (a hand-edited or foreign file) is one ValueError."""
    from ctbench.runtime.storage import UnsafeNameError, read_json, safe_name

    state = read_json(path)
    cells = state.get("cells") if isinstance(state, dict) else None
    if not isinstance(cells, list) or not isinstance(state.get("spec"), dict):
        raise ValueError(f"{path}: not a ctbench matrix state (no spec and cells)")
    for cell in cells:
        if not isinstance(cell, dict):
            raise ValueError(f"{path}: a cell that is not a record: {str(cell)[:100]}")
        try:
            safe_name(cell.get("folder"), "cell folder")
        except UnsafeNameError as error:
            raise ValueError(f"{path}: {error}") from error
    return state


def read_states(out: Path) -> list[dict[str, Any]]:
    """:func:`find_states`, refusing a folder that has none."""
    states = find_states(out)
    if not states:
        raise FileNotFoundError(f"{out}: no matrix.json (is it a matrix's --out folder?)")
    return states


def cell_rows(out: Path, states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per recorded cell: status, seconds, its run's median test AUROC, the error."""

    rows = []
    for state in states:
        for cell in state["cells"]:
            run = RunFolder(Path(out) / cell["folder"])
            auroc = run.read_metrics().get("auroc_median") if run.finished else None
            seconds = cell.get("seconds")
            rows.append(
                {
                    "cell": cell["folder"],
                    "status": cell.get("status", "?"),
                    "seconds": None if seconds is None else round(seconds, 1),
                    "test AUROC median": None if auroc is None else round(auroc, 3),
                    "error": (cell.get("error") or "")[:80],
                }
            )
    return rows
