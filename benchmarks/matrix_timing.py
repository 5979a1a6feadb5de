"""Matrix overhead and parallel speed-up (issue 13): the tiny-preset Table 1 matrix, end to end.

Runs ``ctbench matrix paper-table1 --preset tiny`` into fresh folders with ``--jobs 1`` and
``--jobs 2`` (each job then gets half the CPU threads), after one untimed warm-up matrix that
builds the tiny phantom and its pretext in the cache, and records per matrix the wall time, the
sum of the runs' own time, and per cell the matrix's overhead beyond its run (``matrix.json``:
cell seconds - the run's timing total). Goal: under 2 s per cell.

    python benchmarks/matrix_timing.py --out /tmp/matrix-timing --json docs/matrix_timing.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run_matrix(out: Path, jobs: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "ctbench.cli", "matrix", "paper-table1", "--preset", "tiny",
               "--out", str(out), "--jobs", str(jobs)]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - began
    state = json.loads((out / "matrix.json").read_text())
    cells = state["cells"]
    overheads = [c["overhead_seconds"] for c in cells]
    return {
        "jobs": jobs,
        "wall_seconds": wall,
        "matrix_seconds": state["wall_seconds"],
        "sum_run_seconds": sum(c["run_seconds"] for c in cells),
        "overhead_seconds": overheads,
        "max_overhead_seconds": max(overheads),
        "statuses": [c["status"] for c in cells],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/matrix-timing"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    run_matrix(args.out / "warm-up", 1)  # builds the tiny phantom and pretext once
    results = [run_matrix(args.out / f"jobs{jobs}", jobs) for jobs in (1, 2)]
    results[1]["speed_up"] = results[0]["wall_seconds"] / results[1]["wall_seconds"]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
