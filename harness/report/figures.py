"""Figures people look at rather than read: a case in three planes with its truth and report.

Display follows the radiological convention: axial and coronal views show the patient's right
on the image's left (array X runs patient right -> left), anterior at the top of axial views
and on the left of sagittal views. Pixels are drawn with the voxel spacing's aspect ratio.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from ctbench.core.cases import Case
from ctbench.regions.segmentation import SEGMENTED_ORGANS
from ctbench.runtime.storage import atomic_open

ORGAN_COLOURS = {
    "right_lung": "#2ca02c",
    "left_lung": "#1f77b4",
    "heart": "#d62728",
    "great_vessel": "#ff7f0e",
    "mediastinum": "#e6c700",
}
FINDING_COLOUR = "#ff00ff"
WINDOW = (-1000.0, 400.0)  # wide enough to show lung and soft tissue together
LUNG_WINDOW = (-1350.0, 150.0)  # W 1500, L -600


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mark_sides(axis, left: str = "R", right: str | None = None) -> None:
    """Orientation letters on the image's edges, and no ticks."""
    style = {
        "transform": axis.transAxes,
        "color": "yellow",
        "fontsize": 13,
        "fontweight": "bold",
        "va": "center",
    }
    axis.text(0.02, 0.5, left, **style)
    if right is not None:
        axis.text(0.98, 0.5, right, ha="right", **style)
    axis.set_xticks([])
    axis.set_yticks([])


def _save(figure, path: Path) -> Path:
    """Write the figure as PNG atomically and release it."""
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=80)
    _pyplot().close(figure)
    return path


def _focus(case: Case) -> tuple[int, int, int]:
    """Voxel to cut through: the centroid of the largest finding, else the volume centre."""
    masks = [f.mask for f in case.findings if f.mask is not None and f.mask.any()]
    if masks:
        largest = max(masks, key=lambda m: m.sum())
        return tuple(int(np.rint(c)) for c in np.argwhere(largest).mean(axis=0))
    return tuple(n // 2 for n in case.volume.shape)


def plot_case(case: Case, path: Path, title: str | None = None) -> Path:
    """Write a PNG: axial, coronal and sagittal slices with organ and finding contours, and
    the report beside them."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    s, y, x = _focus(case)
    dz, dy, dx = case.spacing
    views = [
        ("axial", lambda a: a[s], dy / dx, ("R", "L")),
        ("coronal", lambda a: a[:, y, :], dz / dx, ("R", "L")),
        ("sagittal", lambda a: a[:, :, x], dz / dy, ("A", "P")),
    ]
    figure = plt.figure(figsize=(17, 6))
    grid = figure.add_gridspec(1, 4, width_ratios=[1, 1, 1, 0.9])
    for column, (name, cut, aspect, (left, right)) in enumerate(views):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(cut(case.volume), cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=aspect)
        for organ, mask in (case.organs or {}).items():
            plane = cut(mask)
            if plane.any():
                axis.contour(plane, levels=[0.5], colors=ORGAN_COLOURS[organ], linewidths=1.0)
        for finding in case.findings:
            if finding.mask is not None and cut(finding.mask).any():
                axis.contour(cut(finding.mask), levels=[0.5], colors=FINDING_COLOUR, linewidths=1.6)
        axis.set_title(f"{name} ({['S', 'Y', 'X'][column]} = {[s, y, x][column]})")
        _mark_sides(axis, left, right)
    text_axis = figure.add_subplot(grid[0, 3])
    text_axis.axis("off")
    labels = sorted({f.label for f in case.findings}) or ["(no findings)"]
    body = "\n".join(textwrap.fill(p, 58) for p in (case.report or "(no report)").split("\n"))
    text_axis.text(
        0,
        1,
        "Labels:\n  " + "\n  ".join(labels) + "\n\nReport:\n" + body,
        va="top",
        family="monospace",
        fontsize=8.5,
    )
    handles = [Line2D([0], [0], color=c, label=o) for o, c in ORGAN_COLOURS.items()]
    handles.append(Line2D([0], [0], color=FINDING_COLOUR, lw=2, label="findings"))
    figure.legend(handles=handles, loc="lower center", ncol=6, frameon=False)
    figure.suptitle(title or case.case_id)
    figure.tight_layout(rect=(0, 0.05, 1, 0.95))
    return _save(figure, path)


def plot_explanation(
    ct: np.ndarray,
    overlays: dict[str, np.ndarray],
    slice_scores: np.ndarray,
    top_groups: list[int],
    path: Path,
    *,
    title: str,
    score_label: str,
    slices_per_group: int = 3,
) -> Path:
    """Top slice groups with each explainer's heatmap side by side, and the per-slice scores.

    ``ct`` is the preprocessed HU volume ``[S, Y, X]``; ``overlays`` map an explainer's name to
    its ReLU'd, min-max-normalised map upsampled to ``[S, Y, X]``. Each row shows the middle
    slice of one slice group (patient right on the image's left); the bottom panel plots
    ``slice_scores`` against the slice group, top groups marked (paper Figure 3).
    """
    plt = _pyplot()
    rows, columns = len(top_groups), 1 + len(overlays)
    figure = plt.figure(figsize=(3.2 * columns + 0.5, 3.2 * rows + 2.6))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[1] * rows + [0.8])
    for row, group in enumerate(top_groups):
        s = group * slices_per_group + slices_per_group // 2
        panels = [("CT", None), *overlays.items()]
        for column, (name, heat) in enumerate(panels):
            axis = figure.add_subplot(grid[row, column])
            axis.imshow(ct[s], cmap="gray", vmin=LUNG_WINDOW[0], vmax=LUNG_WINDOW[1])
            if heat is not None:
                axis.imshow(
                    np.ma.masked_less_equal(heat[s], 0.02), cmap="jet", alpha=0.45, vmin=0, vmax=1
                )
            _mark_sides(axis)
            axis.set_title(
                f"{name} - group {group} (rank {row + 1})" if column == 0 else name, fontsize=9
            )
    axis = figure.add_subplot(grid[rows, :])
    axis.plot(np.arange(len(slice_scores)), slice_scores, marker="o", ms=3, color="#1f77b4")
    axis.scatter(top_groups, slice_scores[top_groups], color="#d62728", zorder=3, label="shown")
    axis.set_xlabel("slice group (superior -> inferior)")
    axis.set_ylabel(score_label)
    axis.legend(loc="upper right", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


SEGMENT_COLOURS = {organ: ORGAN_COLOURS[organ] for organ in SEGMENTED_ORGANS}


def plot_segmentation(
    volume: np.ndarray, masks: dict[str, np.ndarray], spacing, path: Path, title: str
) -> Path:
    """Three organs over three axial slices and one coronal slice of the volume."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    lungs = masks["right_lung"] | masks["left_lung"]
    rows = np.flatnonzero(lungs.any(axis=(1, 2)))
    picks = (
        rows[np.linspace(0, len(rows) - 1, 3).astype(int)]
        if len(rows)
        else [volume.shape[0] // 2] * 3
    )
    y = int(np.argwhere(lungs).mean(axis=0)[1]) if lungs.any() else volume.shape[1] // 2
    figure, axes = plt.subplots(1, 4, figsize=(16, 4.6))
    views = [
        (f"axial S = {s}", volume[s], {k: m[s] for k, m in masks.items()}, spacing[1] / spacing[2])
        for s in picks
    ]
    views.append(
        (
            f"coronal Y = {y}",
            volume[:, y],
            {k: m[:, y] for k, m in masks.items()},
            spacing[0] / spacing[2],
        )
    )
    for axis, (name, image, planes, aspect) in zip(axes, views, strict=True):
        axis.imshow(image, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=aspect)
        for organ, plane in planes.items():
            if plane.any():
                axis.contour(plane, levels=[0.5], colors=SEGMENT_COLOURS[organ], linewidths=1.2)
        _mark_sides(axis, "R", "L")
        axis.set_title(name)
    figure.legend(
        handles=[Line2D([0], [0], color=c, label=o) for o, c in SEGMENT_COLOURS.items()],
        loc="lower center",
        ncol=3,
        frameon=False,
    )
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06, 1, 0.95))
    return _save(figure, path)


def plot_loss_curves(history: list[dict[str, float]], path: Path, title: str) -> Path:
    """Training and validation loss per epoch; the mask-loss part dashed when it is on.

    The epochs on a frozen part's cached output (``--finetune head`` or ``layer4``) come first,
    on a grey background.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    epochs = list(range(1, len(history) + 1))
    head = sum(record.get("stage") != "full" for record in history)
    if head:
        scope = history[0].get("stage", "head")
        axis.axvspan(0.5, head + 0.5, color="0.9", label=f"{scope} on the frozen part's output")
    marker = "-o" if len(history) <= 20 else "-"
    for phase, colour in (("train", "#1f77b4"), ("valid", "#d62728")):
        axis.plot(epochs, [r[f"{phase}_loss"] for r in history], marker, color=colour, label=phase)
        if any(r[f"{phase}_mask_loss"] for r in history):
            axis.plot(
                epochs,
                [r[f"{phase}_mask_loss"] for r in history],
                "--",
                color=colour,
                label=f"{phase} mask loss",
            )
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss per volume")
    axis.legend(fontsize=8)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return _save(figure, path)


def plot_slice_score_profiles(
    scores: np.ndarray, truth: np.ndarray, labels: list[str], path: Path, title: str
) -> Path:
    """Per label, the mean per-slice score of scans with and without it (paper's line plots).

    ``scores [N, M, H]`` are MIL slice scores (logits); the band is one standard deviation.
    """
    plt = _pyplot()
    columns = min(4, len(labels))
    rows = -(-len(labels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.6 * rows), squeeze=False)
    groups = np.arange(scores.shape[2])
    for m, label in enumerate(labels):
        axis = axes.flat[m]
        for present, colour, name in ((False, "#1f77b4", "absent"), (True, "#ff7f0e", "present")):
            chosen = scores[truth[:, m] == present, m]
            if len(chosen):
                mean, sd = chosen.mean(axis=0), chosen.std(axis=0)
                axis.plot(groups, mean, color=colour, label=f"{name} ({len(chosen)})")
                axis.fill_between(groups, mean - sd, mean + sd, color=colour, alpha=0.2)
        axis.set_title(label, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(labels) :]:
        axis.set_visible(False)
    figure.supxlabel("slice group (superior -> inferior)", fontsize=9)
    figure.supylabel("per-slice score (logit)", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def plot_auroc_per_label(table, path: Path, title: str) -> Path:
    """Test AUROC per label with its 95% CI as error bars (``per_label.csv``'s columns)."""
    plt = _pyplot()
    rows = table.dropna(subset=["auroc"])
    figure, axis = plt.subplots(figsize=(7, 0.35 * max(len(rows), 3) + 1.2))
    y = np.arange(len(rows))
    low = rows["auroc"] - rows["auroc_ci_low"]
    high = rows["auroc_ci_high"] - rows["auroc"]
    axis.errorbar(rows["auroc"], y, xerr=[low, high], fmt="o", color="#1f77b4", capsize=3)
    axis.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    axis.set_yticks(y, rows["label"])
    axis.set_xlim(0, 1)
    axis.set_xlabel("test AUROC (95% CI, DeLong)")
    axis.invert_yaxis()
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def plot_organiou_per_label(table, explainers: list[str], path: Path, title: str) -> Path:
    """Test OrganIoU per label, one bar per explainer (``per_label.csv``'s columns)."""
    plt = _pyplot()
    labels = list(table["label"])
    figure, axis = plt.subplots(figsize=(7, 0.35 * max(len(labels), 3) + 1.2))
    height = 0.8 / max(1, len(explainers))
    y = np.arange(len(labels))
    for i, name in enumerate(explainers):
        axis.barh(y + i * height, table[f"organiou_{name}"], height=height, label=name)
    axis.set_yticks(y + height * (len(explainers) - 1) / 2, labels)
    axis.set_xlim(0, 1)
    axis.set_xlabel("test OrganIoU")
    axis.invert_yaxis()
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def plot_label_explanation(explanation, out: Path, model_name: str) -> Path:
    """``OUT/<volume>_<label>.png`` of a ``ctbench.explain.one_volume.LabelExplanation``: the
    top slice groups with each map, and the per-slice scores."""
    e = explanation
    truth = "" if e.truth is None else f", truth {'present' if e.truth else 'absent'}"
    return plot_explanation(
        e.ct,
        e.overlays,
        e.scores,
        e.top,
        out / f"{Path(e.name).stem}_{e.label}.png",
        title=f"{e.name}: {e.label} - {model_name}, p = {e.probability:.2f}{truth}",
        score_label=e.score_label,
        slices_per_group=e.slices_per_group,
    )
