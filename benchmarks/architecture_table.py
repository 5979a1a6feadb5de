"""Run the architecture benchmarks and print the README's markdown table.

    python benchmarks/architecture_table.py            # CPU
    CTBENCH_BENCH_DEVICE=cuda python benchmarks/architecture_table.py

Times are per volume (the batch-2 median divided by 2); ratios are against AxialNet measured
in the same process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

HERE = Path(__file__).resolve().parent


def run_benchmarks(json_path: Path) -> dict:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            str(HERE / "test_architectures.py"),
            f"--benchmark-json={json_path}",
        ],
        check=True,
    )
    return json.loads(json_path.read_text())


def table(results: dict) -> str:
    rows: dict[str, dict] = {}
    for bench in results["benchmarks"]:
        name = bench["param"]
        info = bench["extra_info"]
        row = rows.setdefault(name, {})
        per_volume = bench["stats"]["median"] / info["batch"]
        row[info["phase"]] = (per_volume, info["peak_mib"])
        row.setdefault("parameters", info.get("parameters"))
    base_fwd = rows["axialnet"]["forward"][0]
    base_train = rows["axialnet"]["forward+backward"][0]
    lines = []
    for name in sorted(rows, key=lambda n: rows[n]["forward+backward"][0]):
        fwd, fwd_mib = rows[name]["forward"]
        train, train_mib = rows[name]["forward+backward"]
        lines.append(
            [
                name,
                f"{rows[name]['parameters']:,}",
                f"{fwd * 1e3:.0f}",
                f"{fwd / base_fwd:.2f}",
                f"{train * 1e3:.0f}",
                f"{train / base_train:.2f}",
                f"{fwd_mib:.0f}",
                f"{train_mib:.0f}",
            ]
        )
    headers = [
        "model",
        "params",
        "fwd ms/vol",
        "fwd ratio",
        "fwd+bwd ms/vol",
        "fwd+bwd ratio",
        "fwd peak MiB",
        "fwd+bwd peak MiB",
    ]
    return tabulate(lines, headers=headers, tablefmt="github")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        results = run_benchmarks(Path(folder) / "bench.json")
    machine = results["machine_info"]
    print(
        f"\n{machine.get('cpu', {}).get('brand_raw', machine.get('processor'))}, "
        f"torch threads as default; input (16, 3, 128, 128), batch 2, 80 outputs\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
