"""The mask loss where it matters, and the paper's explainer comparison (issue 12, items 4-5).

For every seed, four default-preset AxialNet runs through ``ctbench run`` (each exactly what a
user runs; a finished run folder is reused): plain, ``--mask-loss``, ``--confounders`` and
``--confounders --mask-loss``; and one BodyCAM run, on which HiResCAM and Grad-CAM coincide.
Then, with the mean and spread over seeds:

- HiResCAM OrganIoU on the shifted test split, confounded without and with the mask loss
  (goal: at least +33% relative, the paper's headline gain);
- the shifted-test AUROC of the two confounded labels, with ``ctbench compare``'s DeLong p and
  FDR-corrected p (goal: +0.15 each);
- on the unconfounded data, what the mask loss costs in median test AUROC (goal: <= 0.03);
- the explainers on the plain runs: HiResCAM vs Grad-CAM OrganIoU and pointing game;
- **cue reading**: every test case is rendered again from its own plan with its planted cue
  flipped (body-wall fat thick <-> thin for aortic calcification, the skin marker on <-> off
  for pleural effusion; nothing else changes). The change of the label's logit measures how
  much the model reads the cue; for cases with the label, the change of each cell's
  contribution ``W z`` is split between the cells PARTITION allows and the rest, and the
  forbidden cells' part between changes among negative values (which the mask loss,
  ``softplus(a)``, hardly charges) and the rest. A mask loss that only moves where the cue's
  evidence is attributed leaves the logit change and puts it in allowed cells.

    python benchmarks/mask_loss_effect.py --seeds 0 1 2 --out runs/mask-effect

Writes ``<out>/mask_loss_effect.json`` and prints a markdown summary. Not part of CI (each run
takes minutes); the figures are recorded in ``docs/learning-investigation.md`` and the README.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

CONFOUNDED = ("h_great_vessel_calcification", "lung_pleural_effusion")
CONDITIONS = {
    "plain": [],
    "mask": ["--mask-loss"],
    "confounders": ["--confounders"],
    "confounders_mask": ["--confounders", "--mask-loss"],
}


def run(out: Path, name: str, args: list[str]) -> dict:
    """``ctbench run`` into ``out/name`` unless it finished before; returns its metrics."""
    folder = out / name
    if not (folder / "metrics.json").exists():
        command = [sys.executable, "-m", "ctbench.cli", "run", *args, "--out", str(out)]
        command += ["--name", name, "--quiet", "--overwrite"]
        print("$ ctbench", " ".join(command[3:]), flush=True)
        subprocess.run(command, check=True)
    return json.loads((folder / "metrics.json").read_text())


def cue_reading(folder: Path) -> dict:
    """Logit change when each test case's cue is flipped, and where it is attributed."""
    import ctbench
    from ctbench.data.loader import prepare_volume
    from ctbench.data.preprocess import Preprocessing
    from ctbench.explain.explanations import per_slice_contributions
    from ctbench.plugins.datasets.phantom import render_case
    from ctbench.regions.partition import AllowedRegions
    from ctbench.runtime.checkpoints import model_from_checkpoint

    config = json.loads((folder / "config.json").read_text())
    model, _ = model_from_checkpoint(folder / "checkpoints" / "best.pt")
    source = ctbench.create_dataset("phantom", preset="default", confounders=True)
    preprocessing = Preprocessing(volume_shape=tuple(source.volume_shape))
    labels = list(source.label_names)
    run = config["run"]
    regions = AllowedRegions(
        labels,
        (preprocessing.input_shape[0], *model.representation_shape[1:]),
        preprocessing,
        segmenter=run["segmenter"],
        downsampler=run["downsampler"],
        dilate=run["dilate"],
        cache_dir=Path(source.folder) / "partition",
    )
    out = {}
    for label in CONFOUNDED:
        m = labels.index(label)
        changes, allowed_shares, negative_shares, forbidden_means = [], [], [], []
        for case_id in source.case_ids("test"):
            plan = source.plan(case_id)
            if label == CONFOUNDED[0]:
                flipped = replace(plan, fat_mm=9.0 if plan.fat_mm >= 18 else 27.0)
            else:
                flipped = replace(plan, marker=not plan.marker)
            case = source.load(case_id)
            volumes = [case.volume, render_case(source.config, flipped).volume]
            x = torch.stack([prepare_volume(v, preprocessing)[1] for v in volumes])
            with torch.no_grad():
                contributions, logits = per_slice_contributions(model, x)
            changes.append(float(logits[1, m] - logits[0, m]))
            if plan.labels[label]:
                before, after = contributions[0, m], contributions[1, m]
                delta = (after - before).abs()
                allowed = torch.from_numpy(regions(case)[m])
                allowed_shares.append(float(delta[allowed].sum() / delta.sum().clamp_min(1e-12)))
                # the mask loss, softplus(a), hardly charges a change among negative values
                forbidden = ~allowed
                negative = forbidden & (before <= 0) & (after <= 0)
                negative_shares.append(
                    float(delta[negative].sum() / delta[forbidden].sum().clamp_min(1e-12))
                )
                forbidden_means.append(float(before[forbidden].mean()))
        out[label] = {
            "mean_abs_logit_change": float(np.mean(np.abs(changes))),
            "mean_logit_change": float(np.mean(changes)),
            "allowed_share_of_change": float(np.mean(allowed_shares)),
            "forbidden_change_among_negatives": float(np.mean(negative_shares)),
            "forbidden_mean_contribution": float(np.mean(forbidden_means)),
            "cases": len(changes),
        }
    return out


def mean_sd(values: list[float]) -> dict:
    return {
        "mean": float(np.mean(values)),
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "values": values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/mask-effect"))
    args = parser.parse_args()
    from ctbench.experiments.comparison import compare_runs

    per_seed = []
    for seed in args.seeds:
        metrics = {
            condition: run(
                args.out,
                f"{condition}-seed{seed}",
                ["--arch", "axialnet", "--seed", str(seed), *extra],
            )
            for condition, extra in CONDITIONS.items()
        }
        table = compare_runs(
            args.out / f"confounders-seed{seed}", args.out / f"confounders_mask-seed{seed}"
        ).set_index("label")
        record = {
            "seed": seed,
            "organiou_confounded": metrics["confounders"]["organiou"]["hirescam"],
            "organiou_confounded_mask": metrics["confounders_mask"]["organiou"]["hirescam"],
            "auroc_median_plain": metrics["plain"]["auroc_median"],
            "auroc_median_mask": metrics["mask"]["auroc_median"],
            "explainers_plain": {
                name: {
                    "organiou": metrics["plain"]["organiou"][name],
                    "pointing_game": metrics["plain"]["localisation"][name]["pointing_game"],
                }
                for name in ("hirescam", "gradcam")
            },
            "confounded_labels": {
                label: {
                    "auroc": table.loc[label, "auroc_a"],
                    "auroc_mask": table.loc[label, "auroc_b"],
                    "p": table.loc[label, "p_value"],
                    "p_fdr": table.loc[label, "p_fdr"],
                }
                for label in CONFOUNDED
            },
            "cue_reading": {
                condition: cue_reading(args.out / f"{condition}-seed{seed}")
                for condition in ("confounders", "confounders_mask")
            },
        }
        per_seed.append(record)
        print(json.dumps(record, indent=1), flush=True)
    bodycam = run(
        args.out,
        f"bodycam-seed{args.seeds[0]}",
        ["--arch", "bodycam", "--seed", str(args.seeds[0])],
    )
    gain = [r["organiou_confounded_mask"] / r["organiou_confounded"] - 1 for r in per_seed]
    summary = {
        "organiou_relative_gain": mean_sd(gain),
        "organiou_confounded": mean_sd([r["organiou_confounded"] for r in per_seed]),
        "organiou_confounded_mask": mean_sd([r["organiou_confounded_mask"] for r in per_seed]),
        "auroc_cost_unconfounded": mean_sd(
            [r["auroc_median_plain"] - r["auroc_median_mask"] for r in per_seed]
        ),
        "confounded_auroc_gain": {
            label: mean_sd(
                [
                    r["confounded_labels"][label]["auroc_mask"]
                    - r["confounded_labels"][label]["auroc"]
                    for r in per_seed
                ]
            )
            for label in CONFOUNDED
        },
        "bodycam": {
            "organiou": bodycam["organiou"],
            "pointing_game": {k: v["pointing_game"] for k, v in bodycam["localisation"].items()},
        },
    }
    result = {"per_seed": per_seed, "summary": summary}
    (args.out / "mask_loss_effect.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
