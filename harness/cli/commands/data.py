"""``ctbench data``: materialise a dataset, or look at one of its cases."""

from __future__ import annotations

from pathlib import Path

import click
from ctbench.cli.commands import SEED, PluginName, dataset_option, default_plugin
from ctbench.core.cases import SPLITS


@click.group()
def data() -> None:
    """Generate datasets and show their cases."""


def _dataset_options(command):
    command = click.option(
        "--confounders",
        is_flag=True,
        help="Plant the dataset's spurious cues (shifted test split), for a dataset that "
        "declares confounded_labels.",
    )(command)
    command = click.option("--seed", type=SEED, default=0, show_default=True)(command)
    return click.option(
        "--preset",
        default="default",
        show_default=True,
        help="The dataset's preset (built-in datasets: tiny, default, paper).",
    )(command)


DATA_ROOT = click.option(
    "--data-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The dataset's folder, for datasets read from disk (rad-chestct, ct-rate, folder).",
)


def _source(
    name: str,
    preset: str,
    seed: int = 0,
    confounders: bool = False,
    cache_dir: Path | None = None,
    data_root: Path | None = None,
):
    """The dataset with the options it takes: a folder for datasets read from disk, the
    seed and cues for generated ones; a wrong combination is one clear error."""
    import ctbench
    from ctbench.data.checks import check_dataset_options

    options: dict = {"preset": preset}
    if data_root is not None:
        options["data_root"] = data_root
    else:
        options |= {"seed": seed, "confounders": confounders}
    if cache_dir is not None:
        options["cache_dir"] = cache_dir
    try:
        check_dataset_options(name, options)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    try:
        return ctbench.create_dataset(name, **options)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    except TypeError as error:  # the plugin takes no such option
        raise click.ClickException(f"{name}: {error}") from error


GENERATE_OUT = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache folder to write into (default: $CTBENCH_CACHE_DIR or ~/.cache/ctbench).",
)


@data.command("generate")
@click.argument("dataset_name", metavar="[NAME]", type=PluginName("datasets"), required=False)
@_dataset_options
@GENERATE_OUT
def generate(
    dataset_name: str | None, preset: str, seed: int, confounders: bool, out: Path | None
) -> None:
    """Generate every case of dataset NAME's preset into its cache folder (a generated
    dataset, one whose source can materialise(); default: the dataset that declares
    default=True)."""
    _generate(dataset_name, preset, seed, confounders, out)


@data.command("phantom", hidden=True, deprecated="use `ctbench data generate phantom`")
@_dataset_options
@GENERATE_OUT
def phantom_command(preset: str, seed: int, confounders: bool, out: Path | None) -> None:
    """Generate every case of the phantom preset (``ctbench data generate phantom``)."""
    _generate("phantom", preset, seed, confounders, out)


def _generate(
    name: str | None, preset: str, seed: int, confounders: bool, out: Path | None
) -> None:
    from ctbench.core.contracts import declared_of

    name = name or default_plugin("datasets")
    if declared_of("datasets", name)["reads_folder"]:
        raise click.ClickException(f"{name} is read from a folder, not generated: nothing to do")
    source = _source(name, preset, seed, confounders, out)
    if not hasattr(source, "materialise"):
        raise click.ClickException(f"{name} has no materialise(): nothing to generate")
    generated = source.materialise(progress=None)  # a bar only on a terminal
    total = sum(len(source.case_ids(split)) for split in SPLITS)
    click.echo(f"{source.folder}: {total} cases ({generated} generated now)")


@data.command("check")
@click.argument("dataset_name", metavar="[NAME]", type=PluginName("datasets"), required=False)
@click.option("--preset", default="default", show_default=True, help="Dataset preset.")
@DATA_ROOT
@click.option("--quiet", is_flag=True, help="No progress bars.")
def check(dataset_name: str | None, preset: str, data_root: Path | None, quiet: bool) -> None:
    """Load every case of dataset NAME once and list every problem, one line each, before any
    training: an unreadable or truncated file, a label row with no volume or a volume with no
    row, duplicated names, a volume not in HU, no lungs, NaN, a wrong shape or label count.
    Exit 1 when a case is bad. A run skips and lists the same cases. A dataset with released
    labels and reports (ct-rate) also prints, per label, how its labels agree with what the
    report labeler reads. Default NAME: the dataset that declares default=True."""
    from ctbench.data.checks import EmptySplitError, check_cases, check_splits
    from ctbench.data.loader import VolumeDataset

    dataset_name = dataset_name or default_plugin("datasets")
    source = _source(dataset_name, preset, data_root=data_root)
    if hasattr(source, "materialise"):
        source.materialise(progress=False if quiet else None)
    datasets = {split: VolumeDataset(source, split) for split in SPLITS}
    total = sum(len(dataset) for dataset in datasets.values())
    problems = check_cases(datasets, progress=False if quiet else None)
    for problem in problems:
        click.echo(f"{problem['split']} {problem['case_id']}: {problem['error']}")
    sizes = ", ".join(f"{split} {len(dataset)}" for split, dataset in datasets.items())
    click.echo(
        f"{dataset_name} ({preset}): {total} cases, {len(problems)} with problems; usable: {sizes}"
    )
    if hasattr(source, "label_agreement"):
        _echo_agreement(source.label_agreement())
    try:
        check_splits(datasets, dataset_name, problems)
    except EmptySplitError as error:
        click.echo(f"error: {error}")
        raise SystemExit(1) from None
    if problems:
        raise SystemExit(1)


def _echo_agreement(agreement: dict[str, dict]) -> None:
    """The released labels against the report labeler's, one row per label."""
    from tabulate import tabulate

    if not agreement:
        click.echo("no volume has both released labels and a report: nothing to compare")
        return
    click.echo(
        f"released labels against the report labeler, over {agreement['all']['reports']} "
        "distinct reports:"
    )
    rows = [
        [label, a["released"], a["labeler"], a["both"], a["f1"], a["kappa"]]
        for label, a in agreement.items()
    ]
    headers = ["label", "released", "labeler", "both", "F1", "kappa"]
    click.echo(tabulate(rows, headers=headers, floatfmt=".3f", missingval="-"))


@data.command("show")
@dataset_option
@_dataset_options
@DATA_ROOT
@click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True)
@click.option(
    "--index",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Case number within the split.",
)
@click.option("--case", "case_id", default=None, help="Case id (overrides --split/--index).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG to write (default: <case id>.png).",
)
def show(dataset_name, preset, seed, confounders, data_root, split, index, case_id, out) -> None:
    """Write a PNG of one case: three planes, organ and finding contours, the report."""
    from ctbench.report.figures import plot_case

    source = _source(dataset_name, preset, seed, confounders, data_root=data_root)
    if case_id is None:
        ids = source.case_ids(split)
        if index >= len(ids):
            raise click.BadParameter(f"split {split!r} has {len(ids)} cases", param_hint="--index")
        case_id = ids[index]
    try:
        case = source.load(case_id)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    path = plot_case(
        case, out or Path(f"{case_id}.png"), title=f"{dataset_name} {preset}: {case_id}"
    )
    click.echo(str(path))
