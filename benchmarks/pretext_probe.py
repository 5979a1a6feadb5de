"""A pretrained start that ctbench could make itself (issue 12): pretext, linear probe, AxialNet.

Pretext (no finding labels): on the training volumes of a phantom seed disjoint from the
benchmark (default 7; the benchmark is seed 0), ResNet-18 learns to predict, for every slice
group and cell of its 4 x 4 layer4 grid, the fraction of the cell's voxels that belong to each
of the phantom's five organs *and* fall in each HU band: organ-wise intensity occupancy, a
self-supervised target the phantom's organ masks and voxels give for free. Targets are
z-scored per channel and fitted by mean squared error; a held-out slice of the pretext data
reports the fit (R^2).

Then, on the default preset (seed 0):

- ``probe``: the frozen trunk's layer4 features, mean- and max-pooled over slice groups per
  cell, standardised, and one logistic regression per label (C chosen on validation);
- ``axialnet``: AxialNet whose ResNet starts from the pretext (frozen or fine-tuned), trained
  3 epochs as the default run trains.

    python benchmarks/pretext_probe.py pretrain --epochs 6 --out pretext.pt
    python benchmarks/pretext_probe.py probe pretext.pt
    python benchmarks/pretext_probe.py axialnet pretext.pt [--finetune] [--no-augment]
        [--kaiming-head] [--lr 1e-3]

Results are recorded in ``docs/learning-investigation.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import ctbench
import numpy as np
import torch
import torch.nn.functional as F
from ctbench.data.loader import VolumeDataset
from ctbench.plugins.architectures.components import resnet18_features
from ctbench.runtime.memory_format import to_channels_last
from ctbench.train.pretraining import occupancy_targets
from learning_recipes import augmented, init_head, load_split, median_auroc, scores  # beside it
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler


def occupancy(case, grid: int = 4) -> torch.Tensor:
    """``[H, organs x bands, grid, grid]``: ctbench's pretext targets of one case
    (``ctbench.train.pretraining.occupancy_targets``, the band edges ``ctbench run`` uses)."""
    targets = occupancy_targets(
        case.volume.astype(np.float32), case.organs, slices_per_group=3, grid=(grid, grid)
    )
    return torch.from_numpy(targets)


def pretext_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs and occupancy targets of one phantom seed's training volumes."""
    source = ctbench.create_dataset("phantom", preset="default", seed=seed)
    source.materialise(progress=False)
    dataset = VolumeDataset(source, "train")
    samples = [dataset[i] for i in range(len(dataset))]
    targets = [occupancy(source.load(sample["case_id"])) for sample in samples]
    return torch.stack([sample["x"] for sample in samples]), torch.stack(targets)


def pretrain(args) -> None:
    torch.manual_seed(0)
    began = time.time()
    x, targets = pretext_data(args.seed)
    images, targets = x.flatten(0, 1), targets.flatten(0, 1)
    targets = (targets - targets.mean(dim=(0, 2, 3), keepdim=True)) / (
        targets.std(dim=(0, 2, 3), keepdim=True) + 1e-3
    )
    held = torch.arange(len(images)) >= len(images) - 320  # the last 20 volumes
    resnet = resnet18_features(False, None)
    net = torch.nn.Sequential(resnet, torch.nn.Conv2d(512, targets.shape[1], 1))
    net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    train_index = torch.nonzero(~held).flatten()
    steps = args.epochs * math.ceil(len(train_index) / 64)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for epoch in range(args.epochs):
        net.train()
        order = train_index[torch.randperm(len(train_index))]
        for k in range(0, len(order), 64):
            i = order[k : k + 64]
            loss = F.mse_loss(
                net(images[i].contiguous(memory_format=torch.channels_last)), targets[i]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        net.eval()
        with torch.no_grad():
            i = torch.nonzero(held).flatten()
            fit = 1 - float(F.mse_loss(net(images[i]), targets[i]))
        print(f"pretext epoch {epoch + 1}: held-out R^2 {fit:.3f}, {time.time() - began:.0f} s")
    torch.save(resnet.state_dict(), args.out)


def trunk(path: str) -> torch.nn.Module:
    resnet = resnet18_features(False, None)
    resnet.load_state_dict(torch.load(path, weights_only=True))
    return resnet.eval()


def probe(args) -> None:
    resnet = trunk(args.weights)

    def features(split):
        x, y = load_split(split)
        with torch.no_grad():
            pooled = []
            for volume in x:
                f = resnet(volume)  # [H, 512, 4, 4]
                pooled.append(torch.cat([f.mean(0).flatten(), f.amax(0).flatten()]).numpy())
        return np.stack(pooled), y.numpy()

    (ft, yt), (fv, yv), (fs, ys) = features("train"), features("valid"), features("test")
    scaler = StandardScaler().fit(ft)
    ft, fv, fs = scaler.transform(ft), scaler.transform(fv), scaler.transform(fs)
    aurocs = []
    for m in range(yt.shape[1]):
        fits = {
            c: LogisticRegression(C=c, max_iter=2000).fit(ft, yt[:, m])
            for c in (1e-3, 1e-2, 1e-1, 1.0)
        }
        best = max(fits, key=lambda c: roc_auc_score(yv[:, m], fits[c].decision_function(fv)))
        aurocs.append(roc_auc_score(ys[:, m], fits[best].decision_function(fs)))
    print(json.dumps({"probe_test_median": round(float(np.median(aurocs)), 3),
                      "per_label": [round(a, 2) for a in aurocs]}))  # fmt: skip


def axialnet(args) -> None:
    torch.manual_seed(0)
    (x, y), (xv, yv), (xs, ys) = (load_split(split) for split in ("train", "valid", "test"))
    model = ctbench.create_model("axialnet", y.shape[1], tuple(x.shape[1:]))
    model.trunk.resnet.load_state_dict(trunk(args.weights).state_dict())
    if args.kaiming_head:
        init_head(model, kaiming=True, prior=y.mean(0))
    model = to_channels_last(model)
    if not args.finetune:
        for p in model.trunk.resnet.parameters():
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=args.lr, weight_decay=1e-7)
    steps = 3 * math.ceil(len(x) / 4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for epoch in range(3):
        model.train()
        if not args.finetune:
            model.trunk.resnet.eval()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for k in range(0, len(x), 4):
            index = order[k : k + 4]
            batch = x[index]
            if not args.no_augment:
                batch = augmented(batch, np.random.default_rng([0, epoch, k]))
            loss = F.binary_cross_entropy_with_logits(model(batch), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        test_median, per_label = median_auroc(ys.numpy(), scores(model, xs))
        print(json.dumps({"epoch": epoch + 1,
                          "valid_median": round(median_auroc(yv.numpy(), scores(model, xv))[0], 3),
                          "test_median": round(test_median, 3),
                          "per_label": per_label}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pretrain")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--out", default="pretext.pt")
    p = commands.add_parser("probe")
    p.add_argument("weights")
    p = commands.add_parser("axialnet")
    p.add_argument("weights")
    p.add_argument("--finetune", action="store_true")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--kaiming-head", action="store_true")
    p.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    {"pretrain": pretrain, "probe": probe, "axialnet": axialnet}[args.command](args)


if __name__ == "__main__":
    main()
