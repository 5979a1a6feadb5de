"""ctbench table: each table built from small fake run folders with known numbers."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ctbench.experiments.run_config import RunConfig
from ctbench.report.tables import build_table

MACHINE = {"cpu": "Test CPU 9000", "cores": 8, "gpus": [], "torch_threads": 8}


def fake_run(root: Path, name: str, metrics: dict, predictions=None, **options) -> Path:
    """A finished run folder: config.json (the options, resolved) and metrics.json."""
    folder = root / name
    folder.mkdir(parents=True)
    run = RunConfig(**{"arch": "axialnet", "preset": "tiny", **options}).resolved()
    (folder / "config.json").write_text(json.dumps({"run": run.to_json(), "machine": MACHINE}))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if predictions is not None:
        predictions.to_csv(folder / "predictions.csv", index=False)
    return folder


def cells(table, row_name: str) -> dict:
    (row,) = [r for r in table.rows if r[0] == row_name]
    return dict(zip(table.columns, row, strict=True))


def test_table1_aggregates_seeds_and_sets_the_paper_beside(tmp_path):
    for seed, auroc, hires in ((0, 0.70, 0.20), (1, 0.74, 0.30)):
        metrics = {
            "valid_auroc_median": auroc,
            "valid_auroc_mean": auroc - 0.1,
            "valid_organiou": {"gradcam": 0.1, "hirescam": hires},
        }
        fake_run(tmp_path, f"a{seed}", metrics, seed=seed)
    fake_run(tmp_path, "c", {"valid_auroc_median": 0.6, "valid_organiou": {}}, arch="ctnet")
    table = build_table("1", tmp_path)
    assert [r[0] for r in table.rows] == ["ctnet", "axialnet"]  # the paper's order
    axial = cells(table, "axialnet")
    assert axial["n"] == 2 and axial["AUROC"].mean == pytest.approx(72.0)
    assert axial["AUROC"].sd == pytest.approx(math.sqrt(8.0))  # sample sd of 70 and 74
    assert axial["AUROC (paper)"] == 67.5 and axial["OrganIoU HiRes (paper)"] == 21.5
    assert axial["OrganIoU HiRes"].mean == pytest.approx(25.0)
    assert axial["AUROC mean"].mean == pytest.approx(62.0)  # beside the median, ours only
    ctnet = cells(table, "ctnet")
    assert ctnet["OrganIoU Grad"] is None and ctnet["OrganIoU Grad (paper)"] is None
    assert ctnet["AUROC"].mean == pytest.approx(60.0) and ctnet["AUROC"].n == 1
    github = table.render("github")
    assert "| axialnet" in github and "72.0 ± 2.8" in github and "67.5" in github
    csv = pd.read_csv(io.StringIO(table.render("csv")))
    row = csv[csv["Model"] == "axialnet"].iloc[0]
    assert row["AUROC sd"] == pytest.approx(math.sqrt(8.0), rel=1e-12)  # full precision
    latex = table.render("latex")
    assert "\\toprule" in latex and "\\midrule" in latex and "\\bottomrule" in latex
    assert "<table>" in table.render("html")


def test_the_label_table_gives_each_labels_test_auroc_and_interval_widths(tmp_path):
    """Per label, the mean over seeds of the test AUROC; the mean and the largest half-width of
    the labels' 95% intervals."""
    for seed, nodule in ((0, 0.5), (1, 0.7)):
        metrics = {
            "auroc": {"nodule": nodule, "effusion": 0.9},
            "auroc_mean": (nodule + 0.9) / 2,
            "auroc_median": (nodule + 0.9) / 2,
            "auroc_ci": {"nodule": [nodule - 0.15, nodule + 0.15], "effusion": [0.85, 0.95]},
        }
        fake_run(tmp_path, f"a{seed}", metrics, seed=seed)
    fake_run(tmp_path, "h", {"auroc": {"nodule": 0.6}, "auroc_ci": {}}, arch="hu-histogram")
    table = build_table("labels", tmp_path)
    axial = cells(table, "axialnet")
    assert axial["n"] == 2 and axial["nodule"].mean == pytest.approx(0.6)
    assert axial["effusion"].mean == pytest.approx(0.9)
    assert axial["mean"].mean == pytest.approx(0.75)
    assert axial["CI half-width mean"].mean == pytest.approx(0.1)  # (0.15 + 0.05) / 2
    assert axial["CI half-width max"].mean == pytest.approx(0.15)
    histogram = cells(table, "hu-histogram")
    assert histogram["effusion"] is None and histogram["CI half-width max"] is None


def test_table2_reports_the_change_of_hirescam_organiou(tmp_path):
    for mask, hires in ((False, 0.2), (True, 0.3)):
        metrics = {"organiou": {"gradcam": 0.1, "hirescam": hires}}
        fake_run(tmp_path, f"m{mask}", metrics, mask_loss=mask)
    table = build_table("2", tmp_path)
    assert [r[0] for r in table.rows] == [
        "axialnet: AxialNet L_class",
        "axialnet: AxialNet L_class + λ L_mask",
    ]
    plus = cells(table, "axialnet: AxialNet L_class + λ L_mask")
    assert plus["HiResCAM"].mean == pytest.approx(30.0) and plus["HiResCAM (paper)"] == 27.6
    assert table.notes == [
        "HiResCAM OrganIoU change with the mask loss: +50.0% (paper: +33%)",
        # (0.3 - 0.2) / (1 - 0.2); these runs score no random map, so no chance correction
        "HiResCAM OrganIoU 0.200 -> 0.300: +0.100 absolute, +50.0% relative, 12% of the "
        "headroom closed",
    ]


def test_table5_rows_by_downsampler_and_dilation(tmp_path):
    for i, (down, dilate) in enumerate((("nearest", False), ("area", True))):
        metrics = {"valid_auroc_median": 0.6 + i / 10}
        fake_run(tmp_path, f"r{i}", metrics, mask_loss=True, downsampler=down, dilate=dilate)
    table = build_table("5", tmp_path)
    area, nearest = table.rows
    assert area[:3] == ["area", True, 1] and area[3].mean == pytest.approx(0.7)
    assert area[4] == 0.662 and nearest[4] == 0.679


def predictions(logits: dict[str, np.ndarray]) -> pd.DataFrame:
    truth = np.array([1, 1, 0, 0])
    rows = [
        {"split": "test", "case_id": f"c{i}", "label": label, "truth": truth[i], "logit": v[i]}
        for label, v in logits.items()
        for i in range(4)
    ]
    return pd.DataFrame(rows)


def test_table7_delong_on_the_known_two_by_two_case(tmp_path):
    """A ranks perfectly, B swaps one pair: AUC 1 against 3/4, z = 1/sqrt(2), p = erfc(1/2)
    (derived in tests/test_stats.py); an identical label has p = 1; BH over the two."""
    same = np.array([0.9, 0.8, 0.1, 0.2])
    a = {"lung_nodule": same, "heart_cardiomegaly": same}
    b = {"lung_nodule": np.array([0.9, 0.15, 0.1, 0.2]), "heart_cardiomegaly": same}
    fake_run(tmp_path, "class", {}, predictions(a))
    fake_run(tmp_path, "mask", {}, predictions(b), mask_loss=True)
    table = build_table("7", tmp_path)
    nodule, heart = cells(table, "lung_nodule"), cells(table, "heart_cardiomegaly")
    assert nodule["Pos %"] == 50.0
    assert nodule["AUROC L_class (95% CI)"].startswith("100.0")
    assert nodule["AUROC + L_mask (95% CI)"].startswith("75.0")
    assert nodule["p"] == pytest.approx(math.erfc(0.5), rel=1e-12)
    assert heart["p"] == pytest.approx(1.0)
    assert nodule["p (FDR)"] == pytest.approx(min(1.0, 2 * math.erfc(0.5)), rel=1e-12)
    assert nodule["AUROC L_class (95% CI) (paper)"] == 68.77 and nodule["p (paper)"] == 1.65e-4


def test_timing_table_per_epoch_per_volume_and_the_machine(tmp_path):
    history = [
        {"stage": "head", "epoch": 0, "seconds": 2.0},
        {"stage": "head", "epoch": 1, "seconds": 4.0},
        {"stage": "full", "epoch": 0, "seconds": 20.0},
    ]
    metrics = {
        "training": {"history": history},
        "cases": {"train": 10, "valid": 3, "test": 3},
        "timing": {"evaluate_valid": 5.0, "evaluate_test": 7.0, "partition": 8.0, "total": 99.0},
        "explain_seconds": {"hirescam": 6.0},
        "memory": {"peak_rss_mib": 512.0},
    }
    fake_run(tmp_path, "t", metrics)
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "machine_info": {"cpu": {"brand_raw": "Bench CPU"}},
                "benchmarks": [
                    {"name": "test_x", "stats": {"mean": 0.5, "stddev": 0.1, "rounds": 5}}
                ],
            }
        )
    )
    table = build_table("timing", tmp_path, [bench])
    row = cells(table, "axialnet")
    assert row["head s/epoch"].mean == 3.0 and row["full s/epoch"].mean == 20.0
    assert row["full s/volume"].mean == 2.0
    assert row["evaluate s/volume"].mean == pytest.approx((12.0 - 6.0) / 6)
    assert row["hirescam s/volume"].mean == 1.0 and row["PARTITION s/volume"].mean == 0.5
    assert row["peak RSS MiB"].mean == 512.0 and row["total s"].mean == 99.0
    assert "Test CPU 9000, 8 cores, no GPU" in table.caption
    bench_row = table.rows[-1]
    assert bench_row[0] == "benchmark test_x [Bench CPU]" and bench_row[-1].mean == 0.5


def test_confounders_table_shows_the_confounded_labels(tmp_path):
    for conf in (False, True):
        auroc = {"h_great_vessel_calcification": 0.3 if conf else 0.8, "lung_pleural_effusion": 0.9}
        metrics = {"auroc_median": 0.8, "organiou": {"hirescam": 0.7}, "auroc": auroc}
        fake_run(tmp_path, f"c{conf}", metrics, confounders=conf)
    table = build_table("confounders", tmp_path)
    assert "AUROC h_great_vessel_calcification" in table.columns
    confounded = dict(zip(table.columns, table.rows[1], strict=True))
    assert confounded["Confounders"] == "yes"
    assert confounded["AUROC h_great_vessel_calcification"].mean == pytest.approx(0.3)


def test_table_command_reads_the_matrix_tables_and_refuses_empty_folders(tmp_path):
    from click.testing import CliRunner
    from ctbench.cli import main

    fake_run(tmp_path, "a", {"valid_auroc_median": 0.7, "valid_organiou": {}})
    (tmp_path / "matrix.json").write_text(
        json.dumps({"spec": {"table": ["1"]}, "cells": [{"folder": "a"}]})
    )
    result = CliRunner().invoke(main, ["table", str(tmp_path)])
    assert result.exit_code == 0 and "Table 1" in result.output and "| axialnet" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = CliRunner().invoke(main, ["table", str(empty), "--table", "1"])
    assert refused.exit_code == 1 and "no finished run folder" in refused.output


def test_explainer_table_aggregates_each_map_over_seeds(tmp_path):
    def block(pointing: float) -> dict:
        metrics = {
            "pointing_game": pointing,
            "mass_inside": 0.5,
            "average_precision": 0.4,
            "auroc": 0.7,
            "dice_tuned": 0.3,
            "hit_tuned": 0.6,
            "instance_f1": 0.45,
        }
        return {
            name: {"mean": value, "low": value, "high": value} for name, value in metrics.items()
        }

    for seed, pointing in ((0, 0.4), (1, 0.6)):
        metrics = {
            "explanation_metrics": {"lesion": {"hirescam": block(pointing), "ideal": block(1.0)}}
        }
        fake_run(tmp_path, f"s{seed}", metrics, seed=seed)
    table = build_table("explainers", tmp_path)
    rows = {row[2]: row for row in table.rows}
    assert rows["hirescam"][1] == "lesion" and rows["hirescam"][3] == 2
    assert rows["hirescam"][4].mean == pytest.approx(0.5) and rows["hirescam"][4].n == 2
    assert rows["ideal"][4].mean == 1.0
    assert table.columns[-1] == "instance F1" and rows["hirescam"][-1].mean == 0.45
    assert "0.500 ± 0.141" in table.render("github")
    fake_run(tmp_path / "none", "x", {"auroc_median": 0.8})
    with pytest.raises(ValueError, match="no run holds explanation metrics"):
        build_table("explainers", tmp_path / "none")


def test_organiou_change_is_read_four_ways():
    from ctbench.report.tables import Stat, organiou_change

    text = organiou_change(0.771, 0.796, Stat(0.4, float("nan"), 1))
    assert "0.771 -> 0.796: +0.025 absolute, +3.2% relative, 11% of the headroom closed" in text
    # (x - r) / (1 - r) with r = 0.4: 0.371 / 0.6 and 0.396 / 0.6
    assert "chance-corrected against a random map (OrganIoU 0.400): 0.618 -> 0.660" in text
    assert "chance" not in organiou_change(0.5, 0.75)
    assert "50% of the headroom closed" in organiou_change(0.5, 0.75)


def test_runs_group_by_their_training_scope(tmp_path):
    """--finetune is a run option like any other: each scope is its own row."""
    for scope, hires in (("head", 0.2), ("layer4", 0.4)):
        metrics = {"valid_auroc_median": 0.7, "valid_organiou": {"gradcam": 0.1, "hirescam": hires}}
        fake_run(tmp_path, scope, metrics, finetune=scope)
    table = build_table("1", tmp_path)
    names = [row[0] for row in table.rows]
    assert names == [
        "axialnet (finetune=head, layer4_epochs=0)",
        "axialnet (finetune=layer4, layer4_epochs=3)",
    ]
    layer4 = table.rows[1]
    assert dict(zip(table.columns, layer4, strict=True))["OrganIoU HiRes"].mean == pytest.approx(40)


TEST_IDS, SHIFT_IDS = [f"tst{i:05d}" for i in range(6)], [f"tst{i:05d}" for i in range(8)]
CUED_TRUTH = [1, 0, 1, 0, 1, 0, 1, 0]  # the positives of "cued" in every split


def ladder_run(root, name, organiou, cue_effect, finding_effect, **options):
    """A finished ladder run: predictions.csv (test, iid, balanced; per-case OrganIoU of
    'cued' positives, cue flags) and metrics.json (shift, and shortcut per case) with known
    answers: constant per-case numbers, iid logits that rank every positive first."""
    rows = []
    for split, ids in (("test", TEST_IDS), ("iid", SHIFT_IDS), ("balanced", SHIFT_IDS)):
        for k, case in enumerate(ids):
            truth = CUED_TRUTH[k]
            cue = k % 4 in (0, 3)  # balanced: half the positives and half the negatives
            logit = {"iid": truth + 0.1 * k, "balanced": float(cue), "test": 0.5}[split]
            rows.append(
                {
                    "split": split,
                    "case_id": case,
                    "label": "cued",
                    "truth": truth,
                    "logit": logit,
                    "probability": 0.5,
                    "cue": int(cue),
                    "organiou_hirescam": organiou if split == "test" and truth else None,
                }
            )
            rows.append({"split": split, "case_id": case, "label": "plain", "truth": k % 2,
                         "logit": (k % 2) + 0.01 * k, "probability": 0.5, "cue": None,
                         "organiou_hirescam": None})  # fmt: skip
    positives = [bool(CUED_TRUTH[k]) for k in range(len(TEST_IDS))]
    metrics = {
        "organiou": {"hirescam": organiou},
        "shift": {
            "cued": {"iid": 1.0, "balanced": 0.5, "reversed": 0.5, "worst_group": 0.0},
            "plain": {"iid": 1.0, "balanced": 1.0, "reversed": 1.0},
        },
        "shortcut": {
            "cued": {
                "cue_effect": cue_effect, "finding_effect": finding_effect,
                "ratio": cue_effect / finding_effect, "allowed_share": 0.25, "n": 6,
                "per_case": {
                    "case_ids": TEST_IDS,
                    "cue": [cue_effect] * 6,
                    "finding": [finding_effect if p else None for p in positives],
                    "map_allowed": [1.0 if p else None for p in positives],
                    "map_total": [4.0 if p else None for p in positives],
                },
            }
        },
    }  # fmt: skip
    return fake_run(root, name, metrics, pd.DataFrame(rows), confounders=True, **options)


def test_the_ladder_reads_each_arm_against_its_scopes_class_loss(tmp_path):
    for seed, organiou in ((0, 0.70), (1, 0.80)):
        ladder_run(tmp_path, f"head{seed}", organiou, 2.0, 1.0, seed=seed)
    ladder_run(tmp_path, "head-mask", 0.85, 1.0, 1.0, seed=0, mask_loss=True,
               mask_loss_form="per-case")  # fmt: skip
    ladder_run(tmp_path, "oracle", 0.9, 0.0, 1.0, seed=0, oracle="input-mask")
    table = build_table("ladder", tmp_path)
    assert [row[0] for row in table.rows] == [
        "head: class loss", "head: mask loss, per-case", "head: class loss, oracle input-mask"
    ]  # fmt: skip
    base, mask, oracle = (dict(zip(table.columns, row, strict=True)) for row in table.rows)
    assert base["n"] == 2 and base["OrganIoU"].value == pytest.approx(0.75)
    # two seeds, each constant over volumes: the replicates average 0.7 and 0.8 in any mix
    assert (base["OrganIoU"].low, base["OrganIoU"].high) == pytest.approx((0.7, 0.8))
    assert base["headroom closed"] is None  # the baseline is not measured against itself
    # paired with seed 0 (0.70): (0.85 - 0.70) / (1 - 0.70) of the headroom, on every replicate
    closed = mask["headroom closed"]
    assert (closed.value, closed.low, closed.high) == pytest.approx((0.5, 0.5, 0.5))
    assert mask["OrganIoU change"].value == pytest.approx(0.15)
    # ratio 2 -> 1: halved, with an interval that excludes zero
    assert base["cued ratio"].value == pytest.approx(2.0)
    change = mask["cued ratio change"]
    assert change.value == pytest.approx(-0.5) and change.excludes_zero()
    assert mask["cued allowed share"].value == pytest.approx(0.25)
    assert base["iid median AUROC"].value == pytest.approx(1.0)
    assert mask["iid change"].value == pytest.approx(0.0)
    # balanced logits are the cue itself: 2 of 4 positives and 2 of 4 negatives carry it
    assert base["cued balanced"].value == pytest.approx(0.5)
    assert base["cued worst group"].value == pytest.approx(0.0)  # every pair ranked backwards
    assert oracle["cued ratio"].value == 0.0  # input masking hides the cue entirely
    assert oracle["OrganIoU change"].value == pytest.approx(0.2)  # against the class loss
    assert "plain ratio" not in table.columns  # no cue, no shortcut
    frame = table.frame()
    assert {"cued ratio low", "cued ratio high"} <= set(frame.columns)


def test_the_ladder_figure_plots_every_arm(tmp_path):
    from ctbench.report.ladder import build_ladder, plot_ladder
    from ctbench.report.tables import load_runs

    ladder_run(tmp_path / "runs", "head", 0.7, 2.0, 1.0)
    ladder_run(tmp_path / "runs", "mask", 0.8, 1.0, 1.0, mask_loss=True)
    _, points = build_ladder(load_runs(tmp_path / "runs"), replicates=50)
    assert [p["arm"] for p in points] == ["head: class loss", "head: mask loss, paper"]
    assert points[1]["cued"].value == pytest.approx(1.0)
    path = plot_ladder(points, tmp_path / "ladder.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_the_ladder_needs_shift_scores_and_one_matrixs_runs(tmp_path):
    fake_run(tmp_path, "plain", {"organiou": {"hirescam": 0.7}})
    with pytest.raises(ValueError, match="run them with --confounders"):
        build_table("ladder", tmp_path)
    ladder_run(tmp_path, "a", 0.7, 2.0, 1.0)
    ladder_run(tmp_path, "b", 0.7, 2.0, 1.0, lr=0.01)
    with pytest.raises(ValueError, match="differ in more than their arm: lr"):
        build_table("ladder", tmp_path)


def test_the_table_command_offers_every_table():
    """``ctbench table --table`` lists the tables build_table knows (the CLI does not import
    the table module, which loads pandas, to build its help)."""
    from ctbench.cli.commands.table import table
    from ctbench.report.tables import TABLES

    (option,) = [p for p in table.params if p.name == "names"]
    assert tuple(option.type.choices) == TABLES
