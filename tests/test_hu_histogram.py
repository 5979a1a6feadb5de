"""``hu-histogram`` (issue 31, part 1): the soft histogram counts what it should, HiResCAM is
exact on it, and it trains through ``ctbench run``."""

from __future__ import annotations

import json

import ctbench
import numpy as np
import pytest
import torch
from ctbench.plugins.architectures.hu_histogram import HU_EDGES, SoftHistogram


def model_input(hu: np.ndarray) -> torch.Tensor:
    """HU -> the shared preprocessing's input (clamp to [-1000, 800], scale, centre)."""
    return torch.from_numpy((np.clip(hu, -1000, 800) + 1000) / 1800 - 0.449).float()


def test_each_cell_counts_its_voxels_in_their_band():
    """Left half at -870 HU (lung), right half at 40 HU (soft tissue): every left cell holds
    its voxels in the band [-900, -850) (sigmoid(6) - sigmoid(-4) of them: the edges are 30 and
    20 HU away, blurred over 5 HU), every right cell in [30, 50) (sigmoid(2) - sigmoid(-2) =
    tanh(1): both edges 10 HU away); the shares of a cell sum to 1."""
    hu = np.full((1, 3, 16, 16), 40.0)
    hu[..., :8] = -870.0
    z = SoftHistogram((4, 4))(model_input(hu))[0]  # [K, 4, 4]
    lung, tissue = HU_EDGES.index(-900.0), HU_EDGES.index(30.0)
    assert z.shape == (len(HU_EDGES) - 1, 4, 4)
    lung_share = torch.sigmoid(torch.tensor(6.0)) - torch.sigmoid(torch.tensor(-4.0))
    assert torch.allclose(z[lung, :, :2], lung_share.expand(4, 2), atol=1e-4)
    assert torch.allclose(z[tissue, :, 2:], torch.tanh(torch.tensor(1.0)).expand(4, 2), atol=1e-4)
    assert (z[lung, :, 2:] < 1e-6).all() and (z[tissue, :, :2] < 1e-6).all()
    assert torch.allclose(z.sum(0), torch.ones(4, 4), atol=1e-3)


def test_a_focal_finding_moves_its_own_cell():
    """A 3 x 3 pixel plaque (300 HU) in one cell of soft tissue: that cell's calcification
    band holds 9/64 of its voxels, every other cell none."""
    hu = np.full((1, 3, 32, 32), 40.0)
    hu[:, :, 2:5, 2:5] = 300.0
    z = SoftHistogram((4, 4))(model_input(hu))[0]
    band = HU_EDGES.index(250.0)
    assert z[band, 0, 0].item() == pytest.approx(9 / 64, abs=2e-3)
    assert z[band].sum().item() == pytest.approx(9 / 64, abs=3e-3)


@pytest.mark.parametrize("head", ["rank1", "full"])
def test_hirescam_is_exact_on_it(head):
    """The maps of closed-form HiResCAM sum to the score less the bias (completeness), and the
    histogram is differentiable in the input (the generic explainers need it)."""
    torch.manual_seed(0)
    model = ctbench.create_model("hu-histogram", 4, (9, 3, 64, 64), head=head)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    model.train()(torch.randn(6, 9, 3, 64, 64) * 0.3)  # standardisation statistics
    model.eval()
    x = torch.randn(2, 9, 3, 64, 64) * 0.3
    maps, logits = ctbench.create_explainer("hirescam").explain(model, x)
    assert maps.shape == (2, 4, 9, 8, 8)
    bias = model.linear_head()[1]
    assert torch.allclose(maps.sum(dim=(2, 3, 4)), logits - bias, atol=1e-3)
    x.requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_rank_one_head_is_a_band_profile_times_a_map():
    """W_m = profile_m (x) where_m: every label's weight has rank one over (band, cell), and
    the trunk split gives the model's own output."""
    torch.manual_seed(1)
    model = ctbench.create_model("hu-histogram", 3, (9, 3, 64, 64)).eval()
    with torch.no_grad():
        model.where.normal_()
        model.profile.normal_()
    weight, _ = model.linear_head()
    for m in range(3):
        assert torch.linalg.matrix_rank(weight[m].flatten(1)).item() == 1
    x = torch.randn(2, 9, 3, 64, 64) * 0.3
    split = model.from_backbone_features(model.backbone_features(x))
    assert torch.allclose(split, model(x), atol=1e-5)


def test_it_refuses_an_unknown_head():
    with pytest.raises(ValueError, match="rankR"):
        ctbench.create_model("hu-histogram", 3, (9, 3, 64, 64), head="rank0")


def test_its_run_trains_the_head_alone_on_cached_histograms(tmp_path, tiny_phantom, monkeypatch):
    """fixed_trunk=True: the run trains the head for the preset's head epochs on the cached
    histograms and runs no full epoch; it learns (the bias and weights moved) and is scored
    like any model (AUROC, OrganIoU)."""
    from click.testing import CliRunner
    from ctbench.cli import main
    from ctbench.experiments.run_config import TRAINING_RECIPES

    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    args = ["run", "--arch", "hu-histogram", "--preset", "tiny", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output[-3000:]
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert config["recipe"]["name"] == "head on the fixed trunk's cached output"
    assert config["run"]["finetune"] == "head" and config["run"]["epochs"] == 0
    head_epochs = TRAINING_RECIPES["cpu-tiny"]["head_epochs"]
    assert config["run"]["head_epochs"] == head_epochs
    assert metrics["training"]["head_epochs_run"] >= 1
    state = torch.load(folder / "checkpoints" / "best.pt", weights_only=True)["state_dict"]
    assert state["bias"].abs().sum() > 0  # trained: the bias starts at zero
    assert np.isfinite(metrics["auroc_median"]) and np.isfinite(metrics["auroc_mean"])
    assert 0.0 <= metrics["organiou"]["hirescam"] <= 1.0
