"""``--finetune head|layer4|all`` (issue 30, part 1): what trains, what is cached, what a run
resolves, and that a step changes exactly the parameters the scope names."""

from __future__ import annotations

import ctbench
import pytest
import torch
from ctbench.experiments.run_config import RunConfig, supported_scopes
from ctbench.runtime.checkpoints import load_checkpoint
from ctbench.train.warmup import AugmentedCache, BackboneHead, split_of

from .test_warmup import SHAPE, warm_trainer

LAYER4_MODELS = ("axialnet", "axialnet-maxpool", "axialnet-nocustomconv", "axialnet-randinit",
                 "bodycam")  # fmt: skip


@pytest.mark.parametrize("arch", LAYER4_MODELS)
def test_the_layer4_split_is_the_model(arch):
    torch.manual_seed(0)
    model = ctbench.create_model(arch, 4, SHAPE).eval()
    x = torch.rand(2, *SHAPE) - 0.449
    frozen, features, rest = model.split_at("layer4")
    resnet = model.trunk.resnet
    with torch.no_grad():
        f = features(x)
        # layer3's output computed by hand, module by module: [B, H, 256, Y/16, X/16]
        by_hand = x.flatten(0, 1)
        for module in list(resnet)[:-1]:
            by_hand = module(by_hand)
        torch.testing.assert_close(f, by_hand.unflatten(0, x.shape[:2]), rtol=0, atol=0)
        assert tuple(f.shape[:3]) == (2, SHAPE[0], 256)
        torch.testing.assert_close(rest(f), model(x))
        torch.testing.assert_close(BackboneHead(model, "layer4")(f), model(x))
    # the frozen part is everything up to layer3, and nothing of layer4 or after
    frozen_ids = {id(p) for p in frozen.parameters()}
    assert not frozen_ids & {id(p) for p in resnet[-1].parameters()}
    assert frozen_ids == {id(p) for m in list(resnet)[:-1] for p in m.parameters()}


def test_the_augmented_cache_equals_a_fresh_forward_and_computes_each_pair_once(tiny_phantom):
    from ctbench.data.loader import VolumeDataset, to_model_batch
    from torch.utils.data import default_collate

    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 12, SHAPE).eval()
    _, features, _ = model.split_at("layer4")
    calls = []

    def counted(x):
        calls.append(len(x))
        return features(x)

    dataset = VolumeDataset(tiny_phantom, "train", augment=True)
    cache = AugmentedCache(counted, dataset)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(4):
            entry = cache.entry(index)
            fresh = to_model_batch(default_collate([dataset[index]]), dataset.preprocessing)
            with torch.no_grad():
                torch.testing.assert_close(entry["x"], features(fresh["x"])[0], rtol=0, atol=0)
            assert torch.equal(entry["y"], fresh["y"][0])
    drawn = {
        (index, dataset.augmentation(index).index)
        for epoch in range(3)
        for index in range(4)
        if dataset.set_epoch(epoch) is None
    }
    assert len(calls) == len(drawn) == len(cache.entries)  # one forward per pair, ever


@pytest.mark.parametrize("mask_loss", [False, True])
def test_a_layer4_step_changes_exactly_layer4_and_after(tmp_path, tiny_phantom, mask_loss):
    trainer = warm_trainer(
        tmp_path, tiny_phantom, head_epochs=0, layer4_epochs=1, mask_loss=mask_loss
    )
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.fit()
    after = trainer.model.state_dict()
    layer4_prefix = "trunk.resnet.7."  # ResNet-18's children: conv1, bn1, relu, maxpool, layer1-4
    frozen = [k for k in after if k.startswith("trunk.resnet.") and not k.startswith(layer4_prefix)]
    layer4 = [k for k in after if k.startswith(layer4_prefix) and "num_batches" not in k]
    rest = [k for k in after if not k.startswith("trunk.resnet.")]
    assert frozen and layer4 and rest
    # up to layer3 nothing moved, BatchNorm statistics included; layer4 and the rest all did
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert all(not torch.equal(before[k], after[k]) for k in layer4 if "weight" in k)
    # layer4's BatchNorm keeps its pretrained statistics (batches of a few volumes)
    assert all(torch.equal(before[k], after[k]) for k in layer4 if "running" in k)
    assert all(not torch.equal(before[k], after[k]) for k in rest if k.endswith("weight"))
    assert [r["stage"] for r in history] == ["layer4"]
    assert (history[0]["train_mask_loss"] > 0) == mask_loss
    assert all(p.requires_grad for p in trainer.model.parameters())  # unfrozen afterwards


def test_layer4_follows_the_head_from_its_best_epoch_and_keeps_its_own_best(tmp_path, tiny_phantom):
    """The warm-up hands its best epoch on; the run keeps the scope's best epoch even when a
    warm-up epoch had a lower validation loss (the scope asked for is never discarded)."""
    trainer = warm_trainer(tmp_path, tiny_phantom, head_epochs=2, layer4_epochs=2)
    history = trainer.fit()
    assert [r["stage"] for r in history] == ["head", "head", "layer4", "layer4"]
    losses = [r["valid_loss"] for r in history]
    assert trainer.best_epoch == 2 + losses[2:].index(min(losses[2:]))
    best = load_checkpoint(tmp_path / "best.pt")["state_dict"]
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(best[key], value)


# --- what a run resolves -----------------------------------------------------------------


def test_each_preset_and_model_gets_its_scope():
    default = RunConfig(arch="axialnet").resolved()
    assert (default.finetune, default.head_epochs, default.epochs) == ("head", 60, 0)
    assert default.layer4_epochs == 0
    layer4 = RunConfig(arch="axialnet", finetune="layer4").resolved()
    assert (layer4.finetune, layer4.head_epochs, layer4.layer4_epochs) == ("layer4", 60, 12)
    tiny = RunConfig(arch="axialnet", preset="tiny", finetune="layer4").resolved()
    assert (tiny.head_epochs, tiny.layer4_epochs) == (20, 3)
    whole = RunConfig(arch="axialnet", finetune="all").resolved()
    assert (whole.finetune, whole.head_epochs, whole.epochs) == ("all", 0, 3)
    assert RunConfig(arch="axialnet", preset="paper").resolved().finetune == "all"
    assert RunConfig(arch="axialnet", start="random").resolved().finetune == "all"
    assert RunConfig(arch="3dconv").resolved().finetune == "all"
    assert "layer4" in layer4.recipe()["name"] and "12 layer4 epochs" in layer4.recipe()["why"]


def test_scopes_a_model_cannot_take_are_refused_before_any_work():
    assert supported_scopes("axialnet") == ("head", "layer4", "all")
    assert supported_scopes("ctnet") == ("head", "all")
    assert supported_scopes("3dconv") == ("all",)
    with pytest.raises(ValueError, match="ctnet supports --finetune head, all"):
        RunConfig(arch="ctnet", finetune="layer4").resolved()
    with pytest.raises(ValueError, match="3dconv supports --finetune all"):
        RunConfig(arch="3dconv", finetune="head").resolved()
    with pytest.raises(ValueError, match="--finetune all trains end to end"):
        RunConfig(arch="axialnet", finetune="all", head_epochs=5).resolved()
    with pytest.raises(ValueError, match="--layer4-epochs 4 needs --finetune layer4"):
        RunConfig(arch="axialnet", layer4_epochs=4).resolved()


def test_a_model_without_the_split_says_so(tmp_path):
    with pytest.raises(ValueError, match="no backbone to freeze for --finetune layer4"):
        split_of(ctbench.create_model("3dconv", 3, SHAPE), "layer4")
