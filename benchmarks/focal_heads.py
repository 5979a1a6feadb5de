"""Which head on the frozen pretext trunk sees the focal findings (issue 31, part 2).

The default recipe trains everything after ResNet-18 on its cached output for 60 head epochs.
This script caches layer2, layer3 and layer4 of the pretext trunk for every default-preset
volume once and trains candidate heads on them the way the run's head epochs do (Adam, lr 1e-3,
batch 4, the epoch of least validation loss kept), so a head costs seconds to a few minutes.
Test AUROC is reported, never used to choose.

    python -m benchmarks.focal_heads --heads axialnet l2 l3 l23 ms --top-k 4

The record is in docs/models.md ("A model that sees focal findings").
"""

from __future__ import annotations

import argparse
import itertools
import time

import ctbench
import numpy as np
import torch
from ctbench.experiments.runs import preset_pretext
from ctbench.plugins.architectures.components import custom_conv_layers, resnet18_features
from ctbench.plugins.architectures.hu_histogram import SoftHistogram
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

from benchmarks.focal_probe import FOCAL, default_split


def cached_layers(split: str, resnet: nn.Sequential):
    """``(layer2 [N, H, 128, 16, 16], layer3 [N, H, 256, 8, 8], layer4 [N, H, 512, 4, 4],
    labels [N, M])`` of one default-preset split, unaugmented, in float16 to halve memory."""
    dataset = default_split(split)
    out: list[list[torch.Tensor]] = [[], [], [], [], [], [], []]
    histogram = SoftHistogram((32, 32))
    with torch.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            l1 = resnet[:5](sample["x"])  # up to layer1
            h = resnet[5](l1)  # layer2
            l3 = resnet[6](h)
            l4 = resnet[7](l3)
            for k, value in enumerate((h, l3, l4, l1, sample["x"], histogram(sample["x"]))):
                out[k].append(value.half())
            out[6].append(sample["y"])
    return [torch.stack(v) for v in out]


class Branch(nn.Module):
    """One candidate branch, read by name: ``axialnet`` (custom convs + a linear map over the
    4 x 4 grid, mean over slices); ``l2``, ``l3``, ``l23`` (a 1 x 1 conv MLP per cell of layer2,
    layer3 or both on layer2's grid); ``l1conv`` (two 3 x 3 convs on layer1); ``rawconv`` (three
    3 x 3 convs on the input); ``hist1``, ``hist3``, ``hist33`` (soft HU histograms of 4 x 4
    pixel cells, standardised per band, then a 1 x 1 conv, one 3 x 3 conv or two). Every
    branch but ``axialnet`` pools its cells by the mean of the volume's top k."""

    def __init__(self, kind: str, n_classes: int, top_k: int, hidden: int = 32) -> None:
        super().__init__()
        self.kind, self.top_k = kind, top_k
        if kind == "axialnet":
            self.convs, grid = custom_conv_layers((4, 4))
            self.fc = nn.Conv2d(16, n_classes, grid)
            return
        if kind in ("l2", "l3", "l23"):
            channels = {"l2": 128, "l3": 256, "l23": 384}[kind]
            layers = [nn.Conv2d(channels, hidden, 1), nn.ReLU()]
        elif kind in ("l1conv", "rawconv"):
            layers = [nn.Conv2d(3 if kind == "rawconv" else 64, hidden, 3, padding=1), nn.ReLU()]
            if kind == "rawconv":
                layers += [nn.Conv2d(hidden, hidden, 3, stride=2, padding=1), nn.ReLU()]
            layers += [nn.Conv2d(hidden, hidden, 3, stride=2, padding=1), nn.ReLU()]
        elif kind in ("hist1", "hist3", "hist33"):
            kernel = 1 if kind == "hist1" else 3
            layers = [nn.BatchNorm2d(20), nn.Conv2d(20, hidden, kernel, padding=kernel // 2)]
            layers += [nn.ReLU()]
            if kind == "hist33":
                layers += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU()]
        else:
            raise ValueError(f"unknown branch {kind!r}")
        self.local = nn.Sequential(*layers, nn.Conv2d(hidden, n_classes, 1))

    def forward(self, l2, l3, l4, l1, raw, hist):
        batch, slices = l2.shape[:2]
        if self.kind == "axialnet":
            z = self.convs(l4.flatten(0, 1).float())
            return self.fc(z).view(batch, slices, -1).mean(1)
        if self.kind == "l23":
            up = F.interpolate(l3.flatten(0, 1).float(), scale_factor=2.0)
            source = torch.cat([l2.flatten(0, 1).float(), up], 1)
        else:
            chosen = {"l2": l2, "l3": l3, "l1conv": l1, "rawconv": raw}.get(self.kind, hist)
            source = chosen.flatten(0, 1).float()
        cells = self.local(source)  # [B*H, M, D1, D2]
        cells = cells.view(batch, slices, *cells.shape[1:]).transpose(1, 2).flatten(2)
        return cells.topk(self.top_k, dim=2).values.mean(2)


class Head(nn.Module):
    """The sum of the scores of the branches named in ``kind`` (``axialnet+hist3``)."""

    def __init__(self, kind: str, n_classes: int, top_k: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(Branch(k, n_classes, top_k) for k in kind.split("+"))

    def forward(self, *layers):
        return sum(branch(*layers) for branch in self.branches)


def train(kind, data, n_classes, *, epochs, seed, top_k, lr):
    torch.manual_seed(seed)
    (train_x, train_y), (valid_x, valid_y), (test_x, _) = data
    head = Head(kind, n_classes, top_k)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)

    def scores(x):
        head.eval()
        with torch.no_grad():
            return torch.cat([head(*(p[i : i + 8] for p in x)) for i in range(0, len(x[0]), 8)])

    best, state = float("inf"), None
    for _ in range(epochs):
        head.train()
        for batch in np.array_split(rng.permutation(len(train_y)), len(train_y) // 4):
            optimiser.zero_grad()
            loss_fn(head(*(p[batch] for p in train_x)), train_y[batch]).backward()
            optimiser.step()
        valid = loss_fn(scores(valid_x), valid_y).item()
        if valid < best:
            best, state = valid, {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(state)
    return scores(test_x).numpy(), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", nargs="*", default=["axialnet", "l2", "l3", "l23", "ms"])
    parser.add_argument("--top-k", nargs="*", type=int, default=[4])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    args = parser.parse_args()
    torch.set_num_threads(2)
    source = ctbench.create_dataset("phantom", preset="default")
    names = source.label_names
    resnet = resnet18_features(weights=preset_pretext(source, "phantom", "default")).eval()
    start = time.perf_counter()
    splits = [cached_layers(s, resnet) for s in ("train", "valid", "test")]
    seconds = time.perf_counter() - start
    print(f"layers of {sum(len(s[6]) for s in splits)} volumes in {seconds:.0f} s")
    data = [(s[:6], s[6].float()) for s in splits]
    truth = splits[2][6].numpy()
    focal = [names.index(n) for n in FOCAL]
    for kind, top_k, seed in itertools.product(args.heads, args.top_k, args.seeds):
        start = time.perf_counter()
        scores, valid = train(
            kind, data, len(names), epochs=args.epochs, seed=seed, top_k=top_k, lr=args.lr
        )
        values = [roc_auc_score(truth[:, m], scores[:, m]) for m in range(len(names))]
        print(
            f"{kind:8s} top{top_k} seed {seed}: mean {np.mean(values):.3f} median "
            f"{np.median(values):.3f} focal {np.mean([values[m] for m in focal]):.3f} ("
            + ", ".join(f"{values[m]:.2f}" for m in focal)
            + f"), valid loss {valid:.4f}, {time.perf_counter() - start:.0f} s"
        )


if __name__ == "__main__":
    main()
