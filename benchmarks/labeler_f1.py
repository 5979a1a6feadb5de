"""Score the report labeler on phantom reports against their truth (no voxels rendered).

    python benchmarks/labeler_f1.py [N]        # N reports of the default preset (default 2000)

Prints per-label F1 over the phantom's 12 labels, micro F1, exact organ agreement of every
finding, and how many labels outside the 12 were reported (false positives by construction).
"""

from __future__ import annotations

import sys

import numpy as np
from ctbench.plugins.datasets.phantom import FINDING_LABELS, PhantomConfig
from ctbench.plugins.datasets.phantom.findings import plan_case
from ctbench.plugins.datasets.phantom.reports import write_report
from ctbench.regions.labeler import label_report
from sklearn.metrics import f1_score


def main(n: int) -> None:
    config = PhantomConfig.from_preset("default", n_train=n)
    truth, predicted = [], []
    exact = total = extra = 0
    for index in range(n):
        plan = plan_case(config, "train", index)
        result = label_report(write_report(plan, np.random.default_rng(plan.seeds["report"])))
        truth.append(plan.label_vector())
        predicted.append([name in result["labels"] for name in FINDING_LABELS])
        extra += sum(name not in FINDING_LABELS for name in result["labels"])
        organs: dict[str, set[str]] = {}
        for finding in plan.findings:
            organs.setdefault(finding.label, set()).update(finding.organs)
        for label, where in organs.items():
            total += 1
            exact += set(result["locations"].get(label, [])) == where
    y, p = np.array(truth), np.array(predicted)
    for k, name in enumerate(FINDING_LABELS):
        print(f"{name:32s} F1 {f1_score(y[:, k], p[:, k]):.3f}  (positives {int(y[:, k].sum())})")
    print(
        f"micro F1 {f1_score(y, p, average='micro'):.4f} over {n} reports; "
        f"organs exact for {exact} / {total} findings; labels outside the 12 reported: {extra}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
