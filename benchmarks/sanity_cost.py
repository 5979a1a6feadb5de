"""The sanity check end to end on the tiny preset: train a tiny AxialNet run (the baseline
in the same process), then ``ctbench sanity`` on it (cascading and independent randomisation
of HiResCAM and Grad-CAM, and the permuted-label model trained by the same recipe).

    python -m benchmarks.sanity_cost [--cases 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ctbench.experiments.run_config import RunConfig
from ctbench.experiments.runs import execute_run
from ctbench.experiments.sanity_report import check_run


def main(cases: int) -> None:
    folder = Path(tempfile.mkdtemp()) / "run"
    config = RunConfig(
        arch="axialnet", preset="tiny", explainers=("hirescam", "gradcam"), overlays=0
    )
    began = time.perf_counter()
    execute_run(config, folder, progress=False, log=lambda _: None)
    run_seconds = time.perf_counter() - began
    began = time.perf_counter()
    report = check_run(folder, cases=cases, progress=False, log=lambda _: None)
    sanity_seconds = time.perf_counter() - began
    verdicts = {name: result["passed"] for name, result in report["explainers"].items()}
    print(
        f"tiny run {run_seconds:.1f} s; sanity check ({cases} volumes, 2 explainers, with the "
        f"permuted-label model) {sanity_seconds:.1f} s = {sanity_seconds / run_seconds:.2f} "
        f"runs; verdicts {verdicts}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=4)
    main(parser.parse_args().cases)
