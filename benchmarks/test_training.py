"""Training step time with and without the mask loss, AxialNet at the default preset, measured
in the same process (issue goal: ratio <= 1.15).

Each step has its own model and optimizer (same seed), so neither step trains the other's
weights; the two steps alternate within every round, in alternating order, so drift of the
machine (thermal, other processes) falls on both equally; the mask loss uses PARTITION's
allowed regions of real default-preset phantom cases and the trainer's own attention
(``losses.mask_attention``: the closed-form HiResCAM scaled to each slice's contribution).

    python -m pytest benchmarks/test_training.py -s
"""

from __future__ import annotations

import time

import ctbench
import numpy as np
import pytest
import torch
from ctbench.train.losses import classification_loss, mask_attention, mask_loss

INPUT_SHAPE = (16, 3, 128, 128)
BATCH = 2
ROUNDS = 15


@pytest.fixture(scope="module")
def batch():
    """Two default-preset phantom cases: model input, labels and PARTITION's G_true."""
    from ctbench.data.loader import prepare_volume
    from ctbench.data.preprocess import Preprocessing
    from ctbench.plugins.datasets.phantom import FINDING_LABELS, PhantomConfig, generate_case
    from ctbench.regions.partition import AllowedRegions

    config = PhantomConfig.from_preset("default")
    preprocessing = Preprocessing(volume_shape=config.volume_shape)
    labels = list(FINDING_LABELS)
    regions = AllowedRegions(labels, (INPUT_SHAPE[0], 4, 4), preprocessing, downsampler="area")
    cases = [generate_case(config, "train", i) for i in range(BATCH)]
    x = torch.stack([prepare_volume(c.volume, preprocessing)[1] for c in cases])
    y = torch.from_numpy(np.stack([c.labels for c in cases]).astype(np.float32))
    allowed = torch.from_numpy(np.stack([regions(c) for c in cases]))
    assert allowed.any() and not allowed.all()
    return x, y, allowed


def trainer(mask: bool):
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 12, INPUT_SHAPE).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    explainer = ctbench.create_explainer("hirescam", create_graph=True)

    def step(x, y, allowed):
        optimizer.zero_grad(set_to_none=True)
        if mask:
            attention, logits = mask_attention(model, explainer, x)
            loss = classification_loss(logits, y) + mask_loss(attention, allowed) / 3
        else:
            loss = classification_loss(model(x), y)
        loss.backward()
        optimizer.step()

    return step


def test_mask_loss_step_time_ratio(benchmark, batch):
    steps = {"classification": trainer(False), "with_mask_loss": trainer(True)}
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)

    def one_round():
        order.reverse()  # alternate which step goes first
        for name in order:
            began = time.perf_counter()
            steps[name](*batch)
            times[name].append(time.perf_counter() - began)

    one_round()  # warm-up, not counted
    times = {name: [] for name in steps}
    benchmark.group = "training-step-pair"
    benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=0)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    ratios = np.array(times["with_mask_loss"]) / np.array(times["classification"])
    ratio = medians["with_mask_loss"] / medians["classification"]
    print(
        f"\nmedian step: classification {medians['classification']:.3f} s, with mask loss "
        f"{medians['with_mask_loss']:.3f} s; ratio of medians {ratio:.3f} (goal <= 1.15); "
        f"per-round ratios {np.percentile(ratios, 10):.3f}-{np.percentile(ratios, 90):.3f} "
        f"(10th-90th percentile) over {ROUNDS} rounds"
    )
    benchmark.extra_info.update(medians | {"ratio": ratio})
    assert ratio <= 1.15
