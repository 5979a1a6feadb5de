"""A pretrained start that ctbench makes from data itself (docs/pretrained-starts.md).

The paper's AxialNet starts from ImageNet; offline phantom runs cannot download it, and from
random weights ResNet-18 learns little in a CPU's budget (docs/learning-investigation.md). The
pretext gives the phantom presets their own start, without any finding label: on the training
volumes of a pool disjoint from every benchmark split (``source.pretext_source()``), ResNet-18
predicts, for every slice group and every cell of its output grid, the share of the cell's
voxels that belong to each organ *and* fall in each HU band (organ-wise intensity occupancy,
computed from the organ masks and the voxels). Targets are z-scored per channel and fitted by
mean squared error; the last tenth of the volumes is held out to report the fit (R^2).

The weights are saved as a torchvision ResNet-18 state dict (the format of ImageNet weights and
of ``--weights``; ``fc`` is zero and unused), cached under a key of everything that shapes
them, and rebuilt byte for byte by the same settings on the same software.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ctbench.data.preprocess import Preprocessing, fit_to_shape
from ctbench.runtime.storage import atomic_open, config_key, write_json
from ctbench.vocabulary import ORGANS

PRETEXT_VERSION = 1
"""Bumped whenever the pretext's output changes for the same settings."""

BAND_EDGES_HU = (-900.0, -750.0, -400.0, -100.0, 100.0)
"""HU band edges: air, lung, dense lung, fat, water and soft tissue, bright (contrast, bone)."""


MAX_EXAMPLE_BYTES = 8 * 2**30
"""The pretext's examples live in memory (the default preset's take 0.6 GiB)."""


class NoPretextSourceError(ValueError):
    """The dataset offers no disjoint pool of volumes with organ masks to pretrain on."""


@dataclass(frozen=True)
class PretextSettings:
    """Everything that shapes the pretext weights besides the data (part of the cache key)."""

    epochs: int = 10
    batch_size: int = 64  # slice-group images per step
    lr: float = 1e-3
    seed: int = 0
    band_edges_hu: tuple[float, ...] = BAND_EDGES_HU
    held_out: float = 0.1
    version: int = PRETEXT_VERSION

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def backbone_grid(plane: tuple[int, int]) -> tuple[int, int]:
    """In-plane size of ResNet-18's layer4 output for one slice group (measured, not derived)."""
    from torchvision.models import resnet18

    layers = list(resnet18(weights=None).children())[:-2]
    with torch.no_grad():
        out = torch.nn.Sequential(*layers).eval()(torch.zeros(1, 3, *plane))
    return tuple(out.shape[-2:])


def occupancy_targets(
    volume_hu: np.ndarray,
    organs: dict[str, np.ndarray],
    *,
    slices_per_group: int,
    grid: tuple[int, int],
    band_edges_hu: tuple[float, ...] = BAND_EDGES_HU,
) -> np.ndarray:
    """``[H, organs x bands, D1, D2]`` float32: per slice group and cell, the share of voxels in
    each organ (``ORGANS`` order) and HU band (``band_edges_hu``, lower edges inclusive)."""
    s, y, x = volume_hu.shape
    band = np.digitize(volume_hu, band_edges_hu)
    channels = np.stack(
        [organs[name] & (band == b) for name in ORGANS for b in range(len(band_edges_hu) + 1)]
    ).astype(np.float32)  # [C, S, Y, X]
    grouped = torch.from_numpy(channels).view(len(channels), s // slices_per_group, -1, y, x)
    shares = F.adaptive_avg_pool2d(grouped.mean(2), grid)  # [C, H, D1, D2]
    return shares.permute(1, 0, 2, 3).contiguous().numpy()


def pretext_examples(
    source, preprocessing: Preprocessing, settings: PretextSettings, *, progress=None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(images [N, 3, Y, X], targets [N, C, D1, D2], volumes)`` from the source's train split.

    Volumes are padded and centre-cropped onto the model's grid exactly as runs do; a case
    without organ masks is an error naming it.
    """
    from ctbench.data.loader import prepare_volume
    from ctbench.runtime.progress import progress_bar

    shape = tuple(preprocessing.volume_shape)
    grid = backbone_grid(shape[1:])
    images, targets = [], []
    ids = source.case_ids("train")
    needed = len(ids) * math.prod(shape) * 4  # float32 model inputs, all held in memory
    if needed > MAX_EXAMPLE_BYTES:
        raise ValueError(
            f"the pretext holds its {len(ids)} volumes of {shape} in memory ("
            f"{needed / 2**30:.0f} GiB, limit {MAX_EXAMPLE_BYTES / 2**30:.0f} GiB): too large "
            "for this preset; use --start imagenet or --start random"
        )
    for case_id in progress_bar(ids, enabled=progress, desc="pretext data", unit="volume"):
        case = source.load(case_id)
        if case.organs is None:
            raise NoPretextSourceError(f"{case_id}: the pretext needs organ masks; it has none")
        volume, x = prepare_volume(case.volume, preprocessing)
        masks = fit_to_shape(np.stack([case.organs[name] for name in ORGANS]), shape, False)
        organs = dict(zip(ORGANS, masks, strict=True))
        images.append(x)
        targets.append(
            occupancy_targets(
                volume.astype(np.float32),
                organs,
                slices_per_group=preprocessing.slices_per_group,
                grid=grid,
                band_edges_hu=settings.band_edges_hu,
            )
        )
    x = torch.stack(images).flatten(0, 1)  # [N*H, 3, Y, X]
    t = torch.from_numpy(np.stack(targets)).flatten(0, 1)  # [N*H, C, D1, D2]
    return x, t, len(ids)


def train_backbone(
    images: torch.Tensor,
    targets: torch.Tensor,
    volumes: int,
    settings: PretextSettings,
    *,
    progress=None,
    log=None,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Fit ResNet-18 (+ a 1x1 regression layer) to z-scored occupancy on ``device``; returns
    the torchvision state dict (``fc`` zeroed, on the CPU) and a report (held-out R^2 per
    epoch, seconds). The examples stay in host memory; each batch is copied to the device."""
    from ctbench.runtime.progress import progress_bar
    from torchvision.models import resnet18

    log = log or (lambda _message: None)
    torch.manual_seed(settings.seed)
    network = resnet18(weights=None)
    backbone = torch.nn.Sequential(*list(network.children())[:-2])
    regressor = torch.nn.Conv2d(512, targets.shape[1], 1)
    model = torch.nn.Sequential(backbone, regressor).to(device, memory_format=torch.channels_last)
    mean = targets.mean(dim=(0, 2, 3), keepdim=True)
    scale = targets.std(dim=(0, 2, 3), keepdim=True) + 1e-3
    targets = (targets - mean) / scale
    per_volume = len(images) // volumes
    held_volumes = max(1, round(volumes * settings.held_out)) if volumes > 1 else 0
    split = len(images) - held_volumes * per_volume
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    steps = settings.epochs * math.ceil(split / settings.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    generator = torch.Generator().manual_seed(settings.seed)
    report: dict[str, Any] = {"held_out_r2": [], "train_images": split}
    began = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(split, generator=generator)
        batches = range(0, split, settings.batch_size)
        for k in progress_bar(batches, enabled=progress, desc=f"pretext epoch {epoch + 1}"):
            index = order[k : k + settings.batch_size]
            batch = images[index].to(device).contiguous(memory_format=torch.channels_last)
            loss = F.mse_loss(model(batch), targets[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        r2 = _held_out_r2(model, images[split:], targets[split:], device)
        report["held_out_r2"].append(r2)
        log(
            f"pretext epoch {epoch + 1}/{settings.epochs}: held-out R^2 "
            f"{'n/a' if r2 is None else f'{r2:.3f}'}, {time.perf_counter() - began:.0f} s"
        )
    report["seconds"] = time.perf_counter() - began
    state = {k: v.cpu() for k, v in network.state_dict().items()}  # the trained backbone
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.bias"] = torch.zeros_like(state["fc.bias"])
    return state, report


def _held_out_r2(model, images: torch.Tensor, targets: torch.Tensor, device) -> float | None:
    """``1 - MSE / variance`` on held-out z-scored targets (batches of 64, eval mode)."""
    if len(images) == 0:
        return None
    model.eval()
    with torch.no_grad():
        errors = [
            float(
                F.mse_loss(
                    model(images[k : k + 64].to(device)),
                    targets[k : k + 64].to(device),
                    reduction="sum",
                )
            )
            for k in range(0, len(images), 64)
        ]
    variance = float(((targets - targets.mean(dim=(0, 2, 3), keepdim=True)) ** 2).sum())
    return 1.0 - float(sum(errors)) / max(variance, 1e-12)


def pretext_key(source, preprocessing: Preprocessing, settings: PretextSettings) -> str:
    """Cache key: the pretext pool's configuration, the model grid and the settings."""
    config = getattr(source, "config", None)
    return config_key(
        {
            "source": config.to_json() if hasattr(config, "to_json") else source.name,
            "volume_shape": list(preprocessing.volume_shape),
            "settings": settings.to_json(),
            "torch": torch.__version__.split("+")[0],
        }
    )


def pretext_source_of(dataset):
    """The dataset's disjoint pretext pool, or one clear error saying what to use instead."""
    make = getattr(dataset, "pretext_source", None)
    if make is None:
        raise NoPretextSourceError(
            f"dataset {getattr(dataset, 'name', dataset)!r} offers no pretext pool "
            "(pretext_source()); start from ImageNet (--start imagenet) or random weights "
            "(--start random)"
        )
    return make()


SHIPPED = Path(__file__).resolve().parent.parent / "pretext_weights"
"""Pretext weights shipped with ctbench (the default phantom preset's, on the pinned torch): a
first run copies them into the cache instead of spending minutes building them. Each is exactly
what ``ctbench pretrain --preset default --rebuild`` builds on the machine recorded in its JSON
(docs/pretrained-starts.md)."""


def shipped_weights(key: str, folder: Path, log) -> Path | None:
    """The shipped weights of ``key``, copied into the cache ``folder`` and checked against
    their record's SHA-256 on the way (one read); None when none is shipped for this key."""
    shipped = SHIPPED / f"pretext-{key}.pt"
    record = shipped.with_suffix(".json")
    if not (shipped.is_file() and record.is_file()):
        return None
    text = record.read_bytes()
    expected = json.loads(text)["sha256"]
    path = folder / shipped.name
    digest = hashlib.sha256()
    with open(shipped, "rb") as source, atomic_open(path, "wb") as handle:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            handle.write(chunk)
        if digest.hexdigest() != expected:  # raised inside: the copy is discarded
            raise ValueError(
                f"{shipped}: the shipped pretext weights do not match the SHA-256 of their "
                f"record ({expected}); reinstall ctbench, or build them with ctbench pretrain "
                "--rebuild"
            )
    with atomic_open(path.with_suffix(".json"), "wb") as handle:
        handle.write(text)  # the record last: with it, the weights are whole
    log(
        f"using the pretext start shipped with ctbench ({path.name}, sha256 {expected[:12]}...; "
        "ctbench pretrain --rebuild builds it again)"
    )
    return path


def pretext_weights(
    dataset,
    preprocessing: Preprocessing,
    settings: PretextSettings | None = None,
    *,
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
    progress=None,
    log=None,
    device: torch.device | str = "cpu",
) -> Path:
    """The cached pretext weights for ``dataset``'s geometry, built first when missing.

    Beside ``<key>.pt`` a ``<key>.json`` records the settings, the pool, the fit and the file's
    SHA-256. The file is written atomically, so an interrupted build leaves nothing behind.
    """
    log = log or (lambda _message: None)
    settings = settings or PretextSettings()
    source = pretext_source_of(dataset)
    key = pretext_key(source, preprocessing, settings)
    folder = Path(cache_dir) if cache_dir is not None else Path(source.folder).parent / "pretext"
    path = folder / f"pretext-{key}.pt"
    if path.is_file() and path.with_suffix(".json").is_file() and not rebuild:
        return path  # the record is written last: with it, the weights are whole
    if not rebuild and (copied := shipped_weights(key, folder, log)) is not None:
        return copied
    log(f"building the pretext start {path.name} (once; cached for later runs)")
    began = time.perf_counter()
    if hasattr(source, "materialise"):
        source.materialise(progress=progress)
    images, targets, volumes = pretext_examples(source, preprocessing, settings, progress=progress)
    state, report = train_backbone(
        images, targets, volumes, settings, progress=progress, log=log, device=device
    )
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)
    report.update(
        {
            "key": key,
            "settings": settings.to_json(),
            "source": getattr(getattr(source, "config", None), "to_json", lambda: {})(),
            "volumes": volumes,
            "device": str(device),
            "sha256": file_sha256(path),
            "total_seconds": time.perf_counter() - began,
        }
    )
    write_json(path.with_suffix(".json"), report)
    return path


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
