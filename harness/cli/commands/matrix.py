"""``ctbench matrix``: run a spec's grid of runs; ``--status`` shows where a matrix stands."""

from __future__ import annotations

import os
from pathlib import Path

import click
from ctbench.cli.commands import track_option
from ctbench.experiments.matrix_spec import DEFAULT_MAX_CELLS


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    index, _, count = value.partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        shard = (0, 0)
    if not 1 <= shard[0] <= shard[1]:
        raise click.BadParameter(f"{value!r}: expected I/N with 1 <= I <= N (e.g. 2/4)")
    return shard


@click.command()
@click.argument("spec", required=False)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the cells' run folders and matrix.json. Default: matrices/<spec>-<preset>.",
)
@click.option("--preset", default=None, help="Run the grid on this preset (tiny, default, paper).")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override the spec (repeat): a base option (seed=1) or an axis (axes.seed=[0,1,2]); "
    "values are TOML.",
)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Cells at once."
)
@click.option(
    "--devices",
    default=None,
    metavar="0,1,...",
    help="GPUs, one per parallel cell (sets CUDA_VISIBLE_DEVICES; --jobs becomes their count).",
)
@click.option("--shard", default=None, metavar="I/N", help="Run the I-th of N shares of cells.")
@click.option(
    "--launcher",
    type=click.Choice(["local", "slurm", "submitit-local"]),
    default="local",
    show_default=True,
    help="slurm: one submitit job per cell (pip install 'ctbench[slurm]'); submitit-local: the "
    "same through submitit's local executor.",
)
@click.option("--dry-run", is_flag=True, help="List the cells and what would run; run nothing.")
@click.option(
    "--max-cells",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CELLS,
    show_default=True,
    help="Refuse a spec that crosses more cells than this (checked before expanding it).",
)
@click.option(
    "--cell-args",
    "cell_number",
    type=click.IntRange(min=1),
    default=None,
    metavar="I",
    help="Print cell I's `ctbench run` arguments (with --out) and exit: one cell per Slurm "
    "array task, run by torchrun (docs/scaling.md).",
)
@click.option(
    "--replace", is_flag=True, help="Accept a changed spec that drops cells recorded in --out."
)
@track_option
@click.option("--list", "list_specs", is_flag=True, help="List the shipped specs.")
@click.option(
    "--status",
    "status_of",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Print the state of the matrix in this folder and exit.",
)
def matrix(
    spec, out, preset, settings, jobs, devices, shard, launcher, dry_run, max_cells, cell_number,
    replace, track, list_specs, status_of,
) -> None:  # fmt: skip
    """Run every cell of SPEC (a TOML file, or a shipped spec's name such as paper-table1).

    Each cell is an ordinary run folder under --out, named as `ctbench run` names it. Finished
    cells are skipped and unfinished ones resumed; a failing cell is recorded and the others go
    on (the exit status is then 1). `ctbench table OUT` builds the tables from the folders.
    """
    from ctbench.experiments.matrix import SpecChangedError, plan_matrix, run_matrix
    from ctbench.experiments.matrix_spec import SpecError, apply_settings, expand_cells, load_spec
    from ctbench.runtime.locks import FolderLockedError
    from ctbench.runtime.storage import UnsafeNameError, safe_name

    if list_specs:
        from ctbench.experiments.matrix_spec import shipped_specs

        for name, description in shipped_specs().items():
            click.echo(f"{name:14s} {description}")
        return
    if status_of is not None:
        click.echo(status_table(status_of))
        return
    if spec is None:
        raise click.UsageError("give a SPEC (a file or a shipped name; --list shows them)")
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not (dry_run or cell_number):
        raise click.ClickException(
            "ctbench matrix runs its cells one process each; under torchrun, run one cell per "
            "job: torchrun ... -m ctbench -- run $(ctbench matrix SPEC --out OUT --cell-args I)"
        )
    try:
        parsed = load_spec(spec)
        apply_settings(parsed, [*settings, *([f"preset={preset}"] if preset else [])])
        cells = expand_cells(parsed, max_cells)
        preset_name = parsed.run.get("preset", "default")
        out = out or Path("matrices") / safe_name(f"{parsed.name}-{preset_name}", "matrix folder")
    except (SpecError, UnsafeNameError) as error:
        raise click.ClickException(str(error)) from error
    plan = plan_matrix(parsed, cells, out, _shard(shard))
    if devices is not None and not all(part.strip() for part in devices.split(",")):
        raise click.BadParameter(f"{devices!r}: an empty device id", param_hint="--devices")
    if dry_run:
        try:
            click.echo(dry_run_table(plan))
        except ValueError as error:  # a broken matrix.json in --out
            raise click.ClickException(str(error)) from error
        return
    if cell_number is not None:
        if cell_number > len(plan.cells):
            raise click.BadParameter(
                f"{cell_number}: the matrix has {len(plan.cells)} cells", param_hint="--cell-args"
            )
        import shlex

        click.echo(shlex.join([*plan.cells[cell_number - 1].args, "--out", str(plan.out)]))
        return
    try:
        state = run_matrix(
            plan,
            jobs=jobs,
            devices=devices.split(",") if devices else None,
            launcher=launcher,
            replace=replace,
            track=track,
            log=click.echo,
        )
    except (SpecChangedError, FolderLockedError, RuntimeError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    summary = state["summary"]
    click.echo(
        f"matrix {out}: {summary['done']} done, {summary['failed']} failed, "
        f"{summary['skipped']} skipped (finished before), {state['wall_seconds']:.0f} s"
    )
    if summary["failed"]:
        for cell in state["cells"]:
            if cell["status"] == "failed":
                click.echo(f"failed: {cell['folder']}: {cell['error']} (log: {cell['log']})")
        raise SystemExit(1)


def dry_run_table(plan) -> str:
    from ctbench.experiments.matrix import cell_action, spec_changes
    from tabulate import tabulate

    added, dropped = spec_changes(plan)
    rows = [
        [i + 1, cell_action(plan.out, cell), cell.folder, " ".join(cell.args)]
        for i, cell in enumerate(plan.cells)
    ]
    lines = [f"{len(plan.cells)} cells in {plan.out} ({plan.state_path.name})"]
    if added or dropped:
        lines.append(f"the spec changed: adds {added or 'none'}, drops {dropped or 'none'}")
    lines.append(tabulate(rows, headers=["#", "action", "folder", "ctbench run arguments"]))
    return "\n".join(lines)


def status_table(out: Path) -> str:
    """Every recorded cell: status, time, the run's median test AUROC, the error if any."""
    from ctbench.experiments.matrix import cell_rows, read_states, summarise
    from tabulate import tabulate

    try:
        states = read_states(out)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    summary = summarise([cell for state in states for cell in state["cells"]])
    head = f"{out}: " + ", ".join(f"{n} {status}" for status, n in summary.items())
    return head + "\n" + tabulate(cell_rows(out, states), headers="keys")
