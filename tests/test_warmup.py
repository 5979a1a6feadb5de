"""Head warm-up on a frozen backbone's cached output: the same model, only its head trained."""

from __future__ import annotations

import ctbench
import pytest
import torch
from ctbench.data.loader import VolumeDataset
from ctbench.explain.explanations import per_slice_contributions
from ctbench.runtime.checkpoints import load_checkpoint
from ctbench.train.training import Trainer, TrainSettings
from ctbench.train.warmup import BackboneHead, split_of, supports_warm_up

SHAPE = (9, 3, 64, 64)
SPLIT_MODELS = ("axialnet", "axialnet-maxpool", "axialnet-nocustomconv", "bodycam", "bodyconv")


@pytest.mark.parametrize("arch", (*SPLIT_MODELS, "ctnet"))
def test_head_on_backbone_output_is_the_model(arch):
    torch.manual_seed(0)
    model = ctbench.create_model(arch, 4, SHAPE).eval()
    x = torch.rand(2, *SHAPE) - 0.449
    assert supports_warm_up(model)
    with torch.no_grad():
        features = model.backbone_features(x)
        assert tuple(features.shape[:3]) == (2, SHAPE[0], 512)
        torch.testing.assert_close(BackboneHead(model)(features), model(x))


@pytest.mark.parametrize("scope", ["head", "layer4"])
@pytest.mark.parametrize("arch", ["axialnet", "axialnet-nocustomconv", "bodycam"])
def test_explainers_see_the_same_maps_on_cached_features(arch, scope):
    """HiResCAM and Grad-CAM of the view from the frozen part's output (the backbone's, or
    layer3's for --finetune layer4) equal theirs of the model on x (so the mask loss on cached
    features is the model's); NoCustomConv's CAM layer is the backbone's last layer, which the
    head view taps on its input."""
    torch.manual_seed(0)
    model = ctbench.create_model(arch, 3, SHAPE).eval()
    x = torch.rand(2, *SHAPE) - 0.449
    head = BackboneHead(model, scope)
    features = split_of(model, scope)[1](x).detach()
    for name in ("hirescam", "gradcam"):
        explainer = ctbench.create_explainer(name)
        maps, logits = explainer.explain(model, x)
        head_maps, head_logits = explainer.explain(head, features)
        torch.testing.assert_close(head_maps, maps)
        torch.testing.assert_close(head_logits, logits)
    if hasattr(model, "linear_head"):
        torch.testing.assert_close(
            per_slice_contributions(head, features)[0], per_slice_contributions(model, x)[0]
        )


def test_models_without_a_backbone_do_not_warm_up():
    assert not supports_warm_up(ctbench.create_model("3dconv", 3, SHAPE))


def warm_trainer(folder, source, *, mask_loss=False, head_epochs=3, epochs=0, layer4_epochs=0):
    from ctbench.data.preprocess import Preprocessing
    from ctbench.regions.partition import AllowedRegions

    torch.manual_seed(0)
    labels = list(source.label_names)
    model = ctbench.create_model("axialnet", len(labels), SHAPE)
    regions = None
    if mask_loss:
        preprocessing = Preprocessing(volume_shape=tuple(source.volume_shape))
        regions = AllowedRegions(
            labels, (9, *model.representation_shape[1:]), preprocessing, downsampler="area"
        )
    train = VolumeDataset(source, "train", augment=True, allowed_regions=regions)
    valid = VolumeDataset(source, "valid", allowed_regions=regions)
    train.case_ids, valid.case_ids = train.case_ids[:8], valid.case_ids[:4]
    settings = TrainSettings(
        optimizer="adam",
        schedule="cosine",
        batch_size=4,
        epochs=epochs,
        head_epochs=head_epochs,
        mask_loss=mask_loss,
        layer4_epochs=layer4_epochs,
    )
    info = {"arch": "axialnet", "input_shape": SHAPE, "label_names": labels}
    return Trainer(
        model,
        settings,
        train,
        valid,
        folder,
        checkpoint_info=info,
        explain_for_loss=lambda graph: ctbench.create_explainer("hirescam", create_graph=graph),
        progress=False,
    )


@pytest.mark.parametrize("mask_loss", [False, True])
def test_warm_up_trains_the_head_and_leaves_the_backbone(tmp_path, tiny_phantom, mask_loss):
    trainer = warm_trainer(tmp_path, tiny_phantom, mask_loss=mask_loss)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.fit()
    after = trainer.model.state_dict()
    backbone = {f"trunk.resnet.{k}" for k in trainer.model.backbone.state_dict()}
    # the backbone, BatchNorm running statistics included, is exactly as it started
    assert all(torch.equal(before[k], after[k]) for k in backbone)
    assert any(not torch.equal(before[k], after[k]) for k in after if k not in backbone)
    assert [r["stage"] for r in history] == ["head"] * 3
    assert all(r["train_mask_loss"] > 0 for r in history) == mask_loss
    best = load_checkpoint(tmp_path / "best.pt")
    assert trainer.best_epoch == min(range(3), key=lambda i: history[i]["valid_loss"])
    for key, value in best["state_dict"].items():  # the kept head is the best epoch's
        assert torch.equal(value, after[key])
    assert trainer.finished and load_checkpoint(tmp_path / "last.pt")["training"]["head_done"]
    assert all(p.requires_grad for p in trainer.model.parameters())  # unfrozen afterwards


def test_valid_loss_of_the_warm_up_is_the_models(tmp_path, tiny_phantom):
    """The validation loss recorded on cached features equals the full model's on volumes."""
    from ctbench.data.loader import make_loader
    from ctbench.train.losses import classification_loss

    trainer = warm_trainer(tmp_path, tiny_phantom, head_epochs=1)
    history = trainer.fit()
    trainer.model.eval()
    total, seen = 0.0, 0
    with torch.no_grad():
        for batch in make_loader(trainer.valid_data, batch_size=4):
            total += float(classification_loss(trainer.model(batch["x"]), batch["y"])) * 4
            seen += len(batch["y"])
    assert history[0]["valid_loss"] == pytest.approx(total / seen, rel=1e-5)


def test_resume_after_the_warm_up_does_not_repeat_it(tmp_path, tiny_phantom):
    straight = warm_trainer(tmp_path / "straight", tiny_phantom, head_epochs=2, epochs=1)
    straight.fit()
    stopped = warm_trainer(tmp_path / "stopped", tiny_phantom, head_epochs=2, epochs=1)

    def killed(epoch, training):
        raise KeyboardInterrupt("killed in the first full epoch")

    stopped._epoch = killed
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    resumed = warm_trainer(tmp_path / "stopped", tiny_phantom, head_epochs=2, epochs=1)
    resumed.warm_up_head = lambda: pytest.fail("the warm-up ran again")
    history = resumed.fit(resume=True)
    assert [r["stage"] for r in history] == ["head", "head", "full"]
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)


def test_a_model_without_backbone_refuses_head_epochs(tmp_path, tiny_phantom):
    trainer = warm_trainer(tmp_path, tiny_phantom)
    trainer.model = ctbench.create_model("3dconv", 12, SHAPE)
    with pytest.raises(ValueError, match=r"no backbone.*--head-epochs 0"):
        trainer.warm_up_head()
