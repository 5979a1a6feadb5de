"""``--oracle organ-head|input-mask`` (issue 30, part 3): what each lets the model read."""

from __future__ import annotations

import ctbench
import numpy as np
import pytest
import torch
from ctbench.train.oracles import MASKED_HU, InputMaskedSource, organ_masked

from .test_warmup import SHAPE


def test_the_organ_masked_logit_is_the_sum_of_the_organ_cells_contributions():
    """AxialNet's score is mean_h <W_m, z_h> + b_m; masked, only the organ cells' terms stay,
    computed here by hand from the CAM layer and the linear map."""
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 3, SHAPE).eval()
    x = torch.rand(2, *SHAPE) - 0.449
    hirescam = ctbench.create_explainer("hirescam")
    with torch.no_grad():
        maps, logits = hirescam.explain(model, x)
        cells = torch.rand(maps.shape) < 0.4
        masked, masked_maps = organ_masked(logits, maps, cells)
        z = model.trunk.from_backbone(model.backbone_features(x))  # [B*H, F, D1, D2]
        weight, bias = model.linear_head()
        terms = torch.einsum("mfij,bfij->bmij", weight, z).unflatten(0, (2, SHAPE[0]))
        terms = terms.transpose(1, 2)  # [B, M, H, D1, D2]
        by_hand = (terms * cells).sum(dim=(-2, -1)).mean(dim=2) + bias
    torch.testing.assert_close(masked, by_hand, rtol=1e-5, atol=1e-5)
    assert torch.all(masked_maps[~cells] == 0)
    torch.testing.assert_close(
        masked_maps.sum(dim=(-3, -2, -1)) + bias, masked, rtol=1e-5, atol=1e-5
    )


def test_an_organ_head_step_never_trains_a_weight_outside_the_organ(tiny_phantom, tmp_path):
    """A cell outside a label's organ in every slice contributes nothing to that label, so its
    weights get no gradient from the class loss."""
    from ctbench.data.loader import VolumeDataset, to_model_batch
    from ctbench.train.training import Trainer, TrainSettings

    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 12, SHAPE)
    settings = TrainSettings(optimizer="adam", batch_size=2, epochs=1, oracle="organ-head")
    data = VolumeDataset(tiny_phantom, "valid")
    trainer = Trainer(
        model, settings, data, data, tmp_path, checkpoint_info={},
        explain_for_loss=lambda graph: ctbench.create_explainer("hirescam", create_graph=graph),
    )  # fmt: skip
    x = torch.rand(2, *SHAPE) - 0.449
    cells = torch.ones(2, 12, SHAPE[0], *model.representation_shape[1:], dtype=torch.bool)
    cells[:, 4, :, 0, :] = False  # label 4 may never be in the first row of cells
    batch = to_model_batch({"x": x, "y": torch.ones(2, 12), "organ_cells": cells}, None)
    loss, _, _ = trainer.losses(batch, None)
    loss.backward()
    grad = model.fc.weight.grad  # [M, F, D1, D2]
    inside = grad[4, :, 1:, :].abs().max()
    assert inside > 0 and grad[3, :, 0, :].abs().sum() > 0
    assert grad[4, :, 0, :].abs().max() <= 1e-6 * inside  # zero up to float32 cancellation


def test_organ_head_needs_an_affine_head_and_a_faithful_explainer():
    from ctbench.train.oracles import check_oracle

    ctnet = ctbench.create_model("ctnet", 3, SHAPE)
    with pytest.raises(ValueError, match="ctnet is not"):
        check_oracle("organ-head", "ctnet", ctnet, {"name": "hirescam", "faithful": True})
    maxpool = ctbench.create_model("axialnet-maxpool", 3, SHAPE)
    with pytest.raises(ValueError, match="mean over slices"):
        check_oracle("organ-head", "maxpool", maxpool, {"name": "hirescam", "faithful": True})
    axialnet = ctbench.create_model("axialnet", 3, SHAPE)
    with pytest.raises(ValueError, match="gradcam does not declare faithful"):
        check_oracle("organ-head", "axialnet", axialnet, {"name": "gradcam", "faithful": False})
    check_oracle("input-mask", "ctnet", ctnet, {"name": "gradcam"})  # any model can


def test_input_masking_keeps_the_organs_and_hides_every_cue(tmp_path):
    """Inside the segmented organs the voxels are the case's; outside, one constant: the fat and
    the skin marker (both outside every organ) leave the masked volume as it was."""
    from ctbench.plugins.datasets.phantom import PhantomSource

    source = PhantomSource("tiny", confounders=True, n_test=6, cache_dir=tmp_path)
    masked = InputMaskedSource(source, "morphological")
    assert masked.folder != source.folder and masked.confounded_labels == source.confounded_labels
    for case_id in source.case_ids("test"):
        case, hidden = source.load(case_id), masked.load(case_id)
        kept = hidden.volume == case.volume
        assert np.all(hidden.volume[~kept] == MASKED_HU)
        lungs = case.organs["right_lung"] | case.organs["left_lung"]
        assert kept[lungs].mean() > 0.9  # the segmenter finds (nearly) all of the lungs
        assert not kept[case.volume > 1200].any() or not case.meta["marker"]
        for label in source.confounded_labels:
            toggled = masked.counterfactual(case_id, label, "cue")
            assert np.array_equal(toggled.volume, hidden.volume), (case_id, label)


def test_a_run_records_its_oracle_and_what_each_lets_through(tiny_phantom, tmp_path, monkeypatch):
    from ctbench.experiments.run_config import RunConfig
    from ctbench.experiments.runs import execute_run

    monkeypatch.setenv("CTBENCH_CACHE_DIR", str(tiny_phantom.folder.parent))
    results = {}
    for oracle in ("organ-head", "input-mask"):
        config = RunConfig(
            arch="axialnet", preset="tiny", confounders=True, explainers=("hirescam",),
            overlays=0, head_epochs=2, oracle=oracle,
        )  # fmt: skip
        assert oracle in config.resolved().folder_name()
        results[oracle] = execute_run(config, tmp_path / oracle, progress=False, log=lambda _: 0)
        assert results[oracle]["config"]["run"]["oracle"] == oracle
    # calcification's organ (the mediastinum) is its allowed region whatever the report says,
    # so the organ-masked map moves nowhere else (consolidation's report names a side)
    row = results["organ-head"]["shortcut"]["h_great_vessel_calcification"]
    assert row["allowed_share"] in (None, pytest.approx(1.0))
    for row in results["input-mask"]["shortcut"].values():  # no cue reaches the model
        assert row["cue_effect"] == 0.0
