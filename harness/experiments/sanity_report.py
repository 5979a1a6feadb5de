"""``ctbench sanity``'s work on a run folder: the randomisation tests of
``ctbench.explain.sanity`` on the run's trained model and explainers, the permuted-label model
trained by the run's own recipe, and ``sanity.json`` / ``sanity.png`` written into the run
folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from ctbench.experiments.run_folder import RunFolder
from ctbench.explain.sanity import (
    MEASURES,
    PermutedLabels,
    randomisation_tests,
    similarities,
    summary,
    verdict,
)


def _inputs(config, split: str, cases: int) -> torch.Tensor:
    from ctbench.data.loader import VolumeDataset
    from ctbench.data.preprocess import Preprocessing
    from ctbench.experiments.finished_run import dataset_of

    source = dataset_of(config)
    dataset = VolumeDataset(
        source, split, preprocessing=Preprocessing(volume_shape=tuple(source.volume_shape))
    )
    if len(dataset) < 2:
        raise ValueError(f"the {split} split has {len(dataset)} case(s); the check needs two")
    return torch.stack([dataset[i]["x"] for i in range(min(cases, len(dataset)))])


def _explain_with(explainer, x: torch.Tensor, device, batch: int = 2):
    def explain(model):
        parts = []
        for start in range(0, len(x), batch):
            with torch.no_grad():  # as evaluation calls it (ctbench.core.contracts)
                maps, _ = explainer.explain(model, x[start : start + batch].to(device))
                parts.append(maps.float().cpu())
        return torch.cat(parts)

    return explain


def permuted_label_model(config, run_folder: Path, seed: int, progress, log):
    """The run's recipe trained on labels permuted across cases (``RUN/sanity/``), without
    explainers or the mask loss (its allowed regions would follow the true labels); trained
    once and reused."""
    from ctbench.experiments.run_folder import RunFolder
    from ctbench.experiments.runs import execute_run
    from ctbench.runtime.checkpoints import model_from_checkpoint

    folder = run_folder / "sanity" / f"permuted-labels-seed{seed}"
    permuted = replace(config, explainers=(), mask_loss=False, overlays=0)
    if RunFolder(folder).state() != "finished":
        log(f"training the permuted-label model in {folder}")
        execute_run(
            permuted,
            folder,
            resume=RunFolder(folder).state() == "unfinished",
            progress=progress,
            log=log,
            wrap_source=lambda source: PermutedLabels(source, seed),
        )
    return model_from_checkpoint(RunFolder(folder).best_checkpoint)[0]


def check_run(
    run_folder: Path,
    *,
    explainers=None,
    cases: int = 8,
    split: str = "test",
    order: str = "bottom-up",
    permuted: bool = True,
    seed: int = 0,
    device="cpu",
    progress=None,
    log=print,
) -> dict:
    """Every test for every explainer; the report, also written to ``RUN/sanity.json``."""
    import ctbench
    from ctbench.experiments.finished_run import trained_run
    from ctbench.runtime.storage import write_json

    run_folder = Path(run_folder)
    config, names, model = trained_run(run_folder, explainers, device)
    x = _inputs(config, split, cases)
    other = (
        permuted_label_model(config, run_folder, seed, progress, log).to(device)
        if permuted
        else None
    )
    report = {
        "run": str(run_folder),
        "split": split,
        "cases": len(x),
        "seed": seed,
        "explainers": {},
    }
    for name in names:
        log(f"sanity: {name}")
        explain = _explain_with(ctbench.create_explainer(name), x, device)
        trained = explain(model)
        result = randomisation_tests(model, explain, order=order, seed=seed, trained=trained)
        if other is not None:
            data = summary(similarities(trained, explain(other)), seed)
            result["permuted_labels"] = {**data, "passed": verdict(data, result["baseline"])}
        result["passed"] = result["passed"] and result.get("permuted_labels", {}).get(
            "passed", True
        )
        report["explainers"][name] = result
    write_json(RunFolder(run_folder).sanity, report)
    plot_sanity(report, run_folder / "sanity.png")
    report["table"] = table_lines(report)
    return report


def table_lines(report: dict) -> list[str]:
    """One row per explainer and test: the three similarities against the baseline."""
    from tabulate import tabulate

    rows = []
    for name, result in report["explainers"].items():
        tests = [("cascading, all blocks", {k: result["cascading"][-1][k] for k in MEASURES})]
        if "permuted_labels" in result:
            tests.append(("permuted labels", result["permuted_labels"]))
        tests.append(("random-pair baseline", result["baseline"]))
        for test, values in tests:
            rows.append([name, test, *(f"{values[k]['mean']:.3f}" for k in MEASURES)])
        rows.append([name, "verdict", "pass" if result["passed"] else "FAIL", "", ""])
    return tabulate(rows, headers=["explainer", "test", *MEASURES], tablefmt="github").splitlines()


def plot_sanity(report: dict, path: Path) -> Path:
    """Cascading randomisation curves per explainer (one panel per measure), with each
    explainer's random-pair baseline dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ctbench.runtime.storage import atomic_open

    figure, axes = plt.subplots(1, len(MEASURES), figsize=(5 * len(MEASURES), 4), squeeze=False)
    for name, result in report["explainers"].items():
        steps = [step["randomised"] for step in result["cascading"]]
        for axis, measure in zip(axes[0], MEASURES, strict=True):
            (line,) = axis.plot(
                range(len(steps)),
                [s[measure]["mean"] for s in result["cascading"]],
                marker="o",
                label=name,
            )
            axis.axhline(
                result["baseline"][measure]["mean"],
                color=line.get_color(),
                linestyle="--",
                linewidth=1,
            )
            axis.set_xticks(range(len(steps)), steps, rotation=60, ha="right", fontsize=7)
    for axis, measure in zip(axes[0], MEASURES, strict=True):
        axis.set_title(f"{measure} (trained vs randomised)")
        axis.set_ylim(-1.05, 1.05)
    axes[0][0].legend(title="dashed: random pairs")
    orders = {result["order"] for result in report["explainers"].values()}
    figure.suptitle(f"cascading randomisation ({', '.join(sorted(orders))})")
    figure.tight_layout()
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=90)
    plt.close(figure)
    return path
