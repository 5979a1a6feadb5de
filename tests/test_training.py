"""Trainer logic: early stopping on the validation loss, best/last checkpoints, resume state."""

from __future__ import annotations

import ctbench
import pytest
import torch
from ctbench.checkpoints import load_checkpoint
from ctbench.training import Trainer, TrainSettings

SHAPE = (3, 3, 64, 64)


class FakeSplit(list):
    """Stands in for a VolumeDataset: a length and set_epoch (the losses are scripted)."""

    def set_epoch(self, epoch: int) -> None:
        pass


def scripted_trainer(tmp_path, valid_losses, **settings):
    torch.manual_seed(0)
    model = ctbench.create_model("axialnet", 2, SHAPE)
    trainer = Trainer(
        model,
        TrainSettings(**settings),
        FakeSplit(range(8)),
        FakeSplit(range(4)),
        tmp_path,
        checkpoint_info={"arch": "axialnet", "input_shape": SHAPE, "label_names": ["a", "b"]},
        progress=False,
    )
    losses = iter(valid_losses)

    def epoch(index, training):
        if training:
            return {"train_loss": 1.0, "train_class_loss": 1.0, "train_mask_loss": 0.0}
        loss = next(losses)
        return {"valid_loss": loss, "valid_class_loss": loss, "valid_mask_loss": 0.0}

    trainer._epoch = epoch
    return trainer


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    trainer = scripted_trainer(
        tmp_path, [1.0, 0.9, 0.95, 0.97, 0.8], epochs=10, patience=2, optimizer="sgd"
    )
    history = trainer.fit()
    assert [r["epoch"] for r in history] == [0, 1, 2, 3]  # two epochs without improvement
    assert trainer.best_epoch == 1 and trainer.finished
    best, last = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tmp_path / "last.pt")
    assert best["epoch"] == 1 and last["epoch"] == 3
    assert "optimizer" in last and "rng" in last and "optimizer" not in best
    assert last["training"]["best_loss"] == 0.9 and last["training"]["bad_epochs"] == 2


def test_resume_continues_after_the_last_epoch(tmp_path):
    first = scripted_trainer(tmp_path, [1.0], epochs=3, patience=5, optimizer="adam")
    with pytest.raises(StopIteration):  # "crashes" in the second epoch's validation
        first.fit()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 0
    again = scripted_trainer(tmp_path, [0.9, 0.85], epochs=3, patience=5, optimizer="adam")
    history = again.fit(resume=True)
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert [r["valid_loss"] for r in history] == [1.0, 0.9, 0.85]
    assert again.best_epoch == 2 and again.finished


def test_settings_are_checked():
    with pytest.raises(ValueError, match="optimizer"):
        TrainSettings(optimizer="rmsprop")
    with pytest.raises(ValueError, match="schedule"):
        TrainSettings(schedule="step")
