"""Faithfulness of a run's explainers in 3-D: deletion and insertion curves (most relevant
first) and the faithfulness correlation, on the present labels of some test volumes, with
bootstrap intervals over volumes and paired differences.

    python -m benchmarks.faithfulness_eval RUN [--cases 16] [--steps 8] [--explainer NAME ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ctbench
import numpy as np
import torch
from ctbench import faithfulness as faith
from ctbench.bootstrap import bootstrap_mean, paired_difference
from ctbench.checkpoints import model_from_checkpoint
from ctbench.data import VolumeDataset
from ctbench.preprocess import Preprocessing
from ctbench.runs import RunConfig, dataset_of


def present_scores(model, x, y, maps, steps: int) -> dict[str, np.ndarray]:
    """``{measure: [N, M]}`` (NaN for absent labels) for one explainer's maps."""
    out = {k: np.full(y.shape, np.nan) for k in ("deletion", "insertion", "correlation")}
    for n in range(len(x)):
        labels = [int(m) for m in np.flatnonzero(y[n])]
        if not labels:
            continue
        xs, ms = x[n : n + 1], maps[n : n + 1]
        for mode in ("deletion", "insertion"):
            curves = faith.perturbation_curves(model, xs, ms, labels, mode=mode, steps=steps)
            out[mode][n, labels] = faith.curve_area(curves)[0].numpy()
        out["correlation"][n, labels] = faith.faithfulness_correlation(model, xs, ms, labels)[
            0
        ].numpy()
    return out


def main(run: Path, cases: int, steps: int, explainers: list[str]) -> None:
    config = RunConfig.from_json(json.loads((run / "config.json").read_text())["run"])
    model = model_from_checkpoint(run / "checkpoints" / "best.pt")[0]
    source = dataset_of(config)
    data = VolumeDataset(
        source, "test", preprocessing=Preprocessing(volume_shape=tuple(source.volume_shape))
    )
    samples = [data[i] for i in range(min(cases, len(data)))]
    x = torch.stack([s["x"] for s in samples])
    y = torch.stack([s["y"] for s in samples]).numpy() > 0.5
    scores = {}
    for name in explainers or config.explainers:
        with torch.no_grad():
            maps = ctbench.create_explainer(name)(model, x).float()
        scores[name] = present_scores(model, x, y, maps, steps)
        summary = {k: bootstrap_mean(v) for k, v in scores[name].items()}
        print(
            name,
            {
                k: f"{s.mean:.3f} [{s.low:.3f}, {s.high:.3f}] ({s.pairs} pairs)"
                for k, s in summary.items()
            },
        )
    names = list(scores)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for k in scores[a]:
                d = paired_difference(scores[a][k], scores[b][k])
                interval = f"[{d['low']:+.3f}, {d['high']:+.3f}]"
                print(f"{a} - {b} {k}: {d['difference']:+.3f} {interval} p {d['p_value']:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--explainer", action="append", default=[])
    args = parser.parse_args()
    main(args.run, args.cases, args.steps, args.explainer)
