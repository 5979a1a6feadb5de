"""The pretext start: occupancy targets by hand, a disjoint pool, byte-for-byte rebuilds."""

from __future__ import annotations

import ctbench
import numpy as np
import pytest
import torch
from ctbench.data.preprocess import Preprocessing
from ctbench.train.pretraining import (
    NoPretextSourceError,
    PretextSettings,
    backbone_grid,
    file_sha256,
    occupancy_targets,
    pretext_weights,
)
from ctbench.vocabulary import ORGANS


def test_occupancy_targets_by_hand():
    """Six slices (two groups) of 4 x 4 on a 2 x 2 grid: each cell is 2 x 2 pixels x 3 slices
    = 12 voxels, so one voxel is a share of 1/12."""
    volume = np.full((6, 4, 4), -1000.0, np.float32)  # air: band 0 (below -900)
    organs = {name: np.zeros((6, 4, 4), bool) for name in ORGANS}
    lung = ORGANS.index("right_lung")
    organs["right_lung"][0:3, 0:2, 0:2] = True  # group 0, cell (0, 0): 12 voxels of this organ
    volume[0:3, 0:2, 0:2] = -865.0  # lung HU: band 1 ([-900, -750))
    volume[0, 0, 0] = 40.0  # one soft-tissue voxel: band 4 ([-100, 100))
    edges = (-900.0, -750.0, -400.0, -100.0, 100.0)
    out = occupancy_targets(volume, organs, slices_per_group=3, grid=(2, 2), band_edges_hu=edges)
    bands = len(edges) + 1
    assert out.shape == (2, len(ORGANS) * bands, 2, 2)
    first = lung * bands
    np.testing.assert_allclose(out[0, first + 1, 0, 0], 11 / 12)
    np.testing.assert_allclose(out[0, first + 4, 0, 0], 1 / 12)
    # an organ's bands add up to its share of the cell; nothing else is occupied
    np.testing.assert_allclose(out[0, first : first + bands, 0, 0].sum(), 1.0)
    assert out.sum() == pytest.approx(1.0)
    assert out[1].sum() == 0  # the second slice group has no organ voxel


def test_backbone_grid_is_resnet18s():
    assert backbone_grid((128, 128)) == (4, 4)
    assert backbone_grid((64, 64)) == (2, 2)
    assert backbone_grid((420, 420)) == (14, 14)


def test_phantom_pretext_pool_is_disjoint(tiny_phantom):
    from ctbench.plugins.datasets.phantom import PRETEXT_SEED

    pool = tiny_phantom.pretext_source()
    assert pool.config.seed == PRETEXT_SEED != tiny_phantom.config.seed
    assert not pool.config.confounders
    assert pool.case_ids("valid") == pool.case_ids("test") == []
    assert pool.config.volume_shape == tiny_phantom.config.volume_shape
    theirs = [pool.load(c).volume for c in pool.case_ids("train")[:2]]
    benchmark = [tiny_phantom.load(c).volume for c in tiny_phantom.case_ids("train")[:2]]
    assert all(not np.array_equal(a, b) for a in theirs for b in benchmark)
    same_seed = type(tiny_phantom)("tiny", seed=PRETEXT_SEED, cache_dir=tiny_phantom.folder.parent)
    with pytest.raises(ValueError, match="pretext pool"):
        same_seed.pretext_source()


def test_a_dataset_without_a_pool_gets_one_clear_error():
    class NoPool:
        name = "folder-of-ct"

    with pytest.raises(NoPretextSourceError, match=r"folder-of-ct.*--start imagenet"):
        pretext_weights(NoPool(), Preprocessing(volume_shape=(27, 64, 64)))


def test_pretext_rebuilds_byte_for_byte_and_loads_as_resnet18(tmp_path, tiny_phantom):
    """`ctbench pretrain --preset tiny` twice gives the same file; runs load it by --weights."""
    settings = PretextSettings(epochs=1)
    shape = Preprocessing(volume_shape=tuple(tiny_phantom.volume_shape))
    first = pretext_weights(tiny_phantom, shape, settings, cache_dir=tmp_path / "a")
    second = pretext_weights(tiny_phantom, shape, settings, cache_dir=tmp_path / "b")
    assert first.name == second.name
    assert file_sha256(first) == file_sha256(second)
    assert first.read_bytes() == second.read_bytes()
    record = first.with_suffix(".json")
    assert record.exists() and file_sha256(first) in record.read_text()
    # cached: asking again neither rebuilds nor rewrites
    before = first.stat().st_mtime_ns
    assert pretext_weights(tiny_phantom, shape, settings, cache_dir=tmp_path / "a") == first
    assert first.stat().st_mtime_ns == before

    state = torch.load(first, weights_only=True)
    assert torch.count_nonzero(state["fc.weight"]) == 0
    model = ctbench.create_model("axialnet", 12, (9, 3, 64, 64), weights=first)
    loaded = model.trunk.resnet.state_dict()
    assert torch.equal(loaded["0.weight"], state["conv1.weight"])
    assert torch.equal(loaded["7.1.bn2.running_mean"], state["layer4.1.bn2.running_mean"])
    fresh = ctbench.create_model("axialnet", 12, (9, 3, 64, 64))
    assert not torch.equal(fresh.trunk.resnet.state_dict()["0.weight"], state["conv1.weight"])


def test_shipped_weights_are_copied_checked_and_rebuild_ignores_them(
    tmp_path, tiny_phantom, monkeypatch
):
    """Weights shipped for the pool's key are copied into the cache (record last) instead of
    being built; a shipped file whose SHA-256 differs from its record is one clear error;
    --rebuild builds whatever is shipped."""
    import json

    from ctbench.train import pretraining

    settings = PretextSettings(epochs=1)
    shape = Preprocessing(volume_shape=tuple(tiny_phantom.volume_shape))
    key = pretraining.pretext_key(tiny_phantom.pretext_source(), shape, settings)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / f"pretext-{key}.pt").write_bytes(b"not built here")
    record = {"sha256": file_sha256(shipped / f"pretext-{key}.pt"), "key": key}
    (shipped / f"pretext-{key}.json").write_text(json.dumps(record))
    monkeypatch.setattr(pretraining, "SHIPPED", shipped)
    said = []
    path = pretext_weights(tiny_phantom, shape, settings, cache_dir=tmp_path / "c", log=said.append)
    assert path == tmp_path / "c" / f"pretext-{key}.pt"
    assert path.read_bytes() == b"not built here" and path.with_suffix(".json").is_file()
    assert "shipped with ctbench" in said[0]
    (shipped / f"pretext-{key}.pt").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="do not match the SHA-256"):
        pretext_weights(tiny_phantom, shape, settings, cache_dir=tmp_path / "d")
    rebuilt = pretext_weights(tiny_phantom, shape, settings, cache_dir=tmp_path / "d", rebuild=True)
    assert torch.load(rebuilt, weights_only=True)["conv1.weight"].shape == (64, 3, 7, 7)


def test_pretrain_cli_prints_weights_and_hash(tmp_path, tiny_phantom, monkeypatch):
    from click.testing import CliRunner
    from ctbench.cli import main

    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    args = ["pretrain", "--preset", "tiny", "--epochs", "1", "--out", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    path = next(tmp_path.glob("pretext-*.pt"))
    assert f"weights: {path}" in result.output
    assert f"sha256: {file_sha256(path)}" in result.output
    assert "pretext epoch 1/1" in result.output


def test_a_pool_too_large_for_memory_is_refused_before_loading(tiny_phantom, monkeypatch):
    import ctbench.train.pretraining as pretraining

    monkeypatch.setattr(pretraining, "MAX_EXAMPLE_BYTES", 1000)
    pool = tiny_phantom.pretext_source()
    shape = Preprocessing(volume_shape=tuple(tiny_phantom.volume_shape))
    with pytest.raises(ValueError, match=r"in memory.*--start imagenet"):
        pretraining.pretext_examples(pool, shape, PretextSettings())
