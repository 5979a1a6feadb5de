"""``ctbench compare``: two runs side by side per label, as the paper's Table 7."""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = {"github": "github", "latex": "latex_booktabs", "plain": "simple"}


@click.command()
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["valid", "test"]), default="test", show_default=True)
@click.option(
    "--format",
    "table_format",
    type=click.Choice([*FORMATS, "csv"]),
    default="github",
    show_default=True,
)
def compare(run_a: Path, run_b: Path, split: str, table_format: str) -> None:
    """Per label: positives %, AUROC with 95% CI of RUN_A and RUN_B, DeLong p, FDR p.

    The p-values are paired two-sided DeLong tests on the same cases, corrected over labels by
    Benjamini-Hochberg.
    """
    from ctbench.experiments.comparison import compare_runs

    try:
        table = compare_runs(run_a, run_b, split)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    if table_format == "csv":
        click.echo(table.to_csv(index=False), nl=False)
        return
    from tabulate import tabulate

    def auc(value, low, high) -> str:
        return "n/a" if value != value else f"{value:.3f} ({low:.3f}-{high:.3f})"

    def p(value) -> str:
        return "n/a" if value != value else f"{value:.2g}"

    rows = [
        [
            r.label,
            f"{r.positives_pct:.1f}",
            auc(r.auroc_a, r.ci_a_low, r.ci_a_high),
            auc(r.auroc_b, r.ci_b_low, r.ci_b_high),
            p(r.p_value),
            p(r.p_fdr),
        ]
        for r in table.itertuples()
    ]
    headers = ["label", "positives %", "AUROC A (95% CI)", "AUROC B (95% CI)", "p", "p (FDR)"]
    click.echo(f"A = {run_a}\nB = {run_b}\n{split} split, {len(table)} labels")
    click.echo(tabulate(rows, headers=headers, tablefmt=FORMATS[table_format]))
