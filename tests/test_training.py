"""Trainer logic: early stopping on the validation loss, best/last checkpoints, resume state."""

from __future__ import annotations

import ctbench
import pytest
import torch
from ctbench.runtime.checkpoints import load_checkpoint
from ctbench.train.training import Trainer, TrainSettings

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


def real_trainer(folder, source, model_seed: int):
    """AxialNet on 8 training and 4 validation cases of the tiny phantom, 3 epochs of Adam
    with a cosine schedule and augmentation; records the epochs run and every step's loss."""
    from ctbench.data.loader import VolumeDataset

    torch.manual_seed(model_seed)
    labels = list(source.label_names)
    model = ctbench.create_model("axialnet", len(labels), (9, 3, 64, 64))
    train = VolumeDataset(source, "train", augment=True, seed=0)
    train.case_ids = train.case_ids[:8]
    valid = VolumeDataset(source, "valid")
    valid.case_ids = valid.case_ids[:4]
    settings = TrainSettings(
        optimizer="adam", lr=1e-3, schedule="cosine", epochs=3, batch_size=4, patience=5
    )
    info = {"arch": "axialnet", "input_shape": (9, 3, 64, 64), "label_names": labels}
    trainer = Trainer(model, settings, train, valid, folder, checkpoint_info=info, progress=False)
    trainer.epochs_run, trainer.step_losses = [], []
    run_epoch, losses = trainer._epoch, trainer.losses

    def recording_epoch(epoch, training):
        trainer.epochs_run.append((epoch, "train" if training else "valid"))
        return run_epoch(epoch, training)

    def recording_losses(batch, explainer, model=None):
        out = losses(batch, explainer, model)
        if trainer.model.training:
            trainer.step_losses.append(float(out[0].detach()))
        return out

    trainer._epoch, trainer.losses = recording_epoch, recording_losses
    return trainer


def test_resume_restores_state_and_continues_step_for_step(tmp_path, tiny_phantom):
    """A run stopped after its first epoch and resumed does not repeat that epoch, gets the
    optimizer, scheduler and RNG state the uninterrupted run had at that point, and then takes
    the same steps with the same losses to the same weights."""
    import shutil

    straight = real_trainer(tmp_path / "straight", tiny_phantom, model_seed=0)
    save = straight._save

    def save_and_keep(path, epoch):  # keep last.pt as it was after every epoch
        save(path, epoch)
        if path == straight.last_path:
            shutil.copy(path, path.with_name(f"last-epoch{epoch}.pt"))

    straight._save = save_and_keep
    straight.fit()
    assert len(straight.step_losses) == 6  # 3 epochs x 2 steps

    stopped = real_trainer(tmp_path / "stopped", tiny_phantom, model_seed=0)
    run_epoch = stopped._epoch

    def killed_in_second_epoch(epoch, training):
        if epoch == 1:
            raise KeyboardInterrupt("killed")
        return run_epoch(epoch, training)

    stopped._epoch = killed_in_second_epoch
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()

    resumed = real_trainer(tmp_path / "stopped", tiny_phantom, model_seed=123)
    torch.rand(1000)  # move the global RNG: only a restore can bring it back
    assert resumed._restore() == 1
    at_epoch0 = load_checkpoint(tmp_path / "straight" / "last-epoch0.pt")
    assert torch.equal(torch.get_rng_state(), at_epoch0["rng"])
    assert resumed.scheduler.state_dict() == at_epoch0["scheduler"]
    assert resumed.optimizer.param_groups[0]["lr"] == at_epoch0["scheduler"]["_last_lr"][0]
    restored = resumed.optimizer.state_dict()["state"]
    assert restored.keys() == at_epoch0["optimizer"]["state"].keys()
    for key, state in at_epoch0["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(restored[key][name], value), (key, name)
    for name, value in at_epoch0["state_dict"].items():
        assert torch.equal(resumed.model.state_dict()[name], value), name

    history = resumed.fit(resume=True)
    assert resumed.epochs_run == [(1, "train"), (1, "valid"), (2, "train"), (2, "valid")]
    assert resumed.step_losses == pytest.approx(straight.step_losses[2:], abs=1e-6)
    assert [r["epoch"] for r in history] == [0, 1, 2]
    for got, want in zip(history, straight.history, strict=True):
        assert got["valid_loss"] == pytest.approx(want["valid_loss"], abs=1e-6)
    final = straight.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, final[name], rtol=0, atol=1e-6, msg=name)
