"""Kill a run (SIGKILL, SIGTERM), resume it in its own run dir, and get the numbers of an uninterrupted run."""

import json
import os
import signal
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from conftest import run_cli, tiny_cifar_overrides
from torch import nn

from lit_cifar.callbacks.checkpoint import ResumableCheckpoint
from lit_cifar.module import LitClassifier

TESTS = Path(__file__).parent
# 80 training images in batches of 16 with drop_last: 5 steps per epoch.
STEPS_PER_EPOCH = 5


class SignalAtStep(pl.Callback):
    """Sends `signum` to its own process after training step `step`: a kill at a known point mid-epoch."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def train_args(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        *tiny_cifar_overrides(root),
        "seed=7",
        "trainer.deterministic=true",
        "trainer.max_epochs=3",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def killed_at(step: int, signum: int) -> list[str]:
    return [
        "+callbacks.kill._target_=test_resume.SignalAtStep",
        f"+callbacks.kill.step={step}",
        f"+callbacks.kill.signum={signum}",
    ]


def final_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_metrics(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run_cli("lit_cifar.train", *train_args(cifar_root, whole)).returncode == 0

    step = STEPS_PER_EPOCH + 2  # in the second epoch; last.ckpt is from the end of the first
    first = run_cli("lit_cifar.train", *train_args(cifar_root, killed, *killed_at(step, signal.SIGKILL)))
    assert first.returncode == -signal.SIGKILL
    assert torch.load(killed / "checkpoints" / "last.ckpt")["global_step"] == STEPS_PER_EPOCH
    assert not (killed / "metrics.json").exists()

    resumed = run_cli("lit_cifar.train", *train_args(cifar_root, killed, "ckpt_path=last"))
    assert resumed.returncode == 0, resumed.stderr
    # Same data order, augmentation and dropout after the resume (the RNG states are in the checkpoint),
    # so the metrics agree to float rounding; the tolerance only allows for summation order.
    expected, got = final_metrics(whole), final_metrics(killed)
    for name in ("val/acc_best", "val/loss", "train/loss", "test/acc", "test/loss"):
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name
    # The resumed run logs on into the same TensorBoard folder, not a new version.
    assert [p.name for p in (killed / "tensorboard").iterdir() if p.is_dir()] == []
    assert len(list((killed / "tensorboard").glob("events.out.tfevents.*"))) >= 2  # one per attempt at least


@pytest.mark.slow
def test_sigterm_saves_last_checkpoint_then_exits_nonzero(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    step = STEPS_PER_EPOCH + 2
    result = run_cli("lit_cifar.train", *train_args(cifar_root, tmp_path, *killed_at(step, signal.SIGTERM)))
    assert result.returncode == 128 + signal.SIGTERM
    assert "error: stopped by SIGTERM" in result.stderr and "Traceback" not in result.stderr
    # Lightning stops after the batch in flight, so the checkpoint holds the signalled step.
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == step
    assert not list((tmp_path / "checkpoints").glob("*.partial"))


@pytest.mark.slow
def test_sigterm_stops_a_sweep_with_a_nonzero_status(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    args = train_args(cifar_root, tmp_path, *killed_at(2, signal.SIGTERM), "model.dropout=0.0,0.1")
    result = run_cli("lit_cifar.train", "-m", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 128 + signal.SIGTERM
    assert (tmp_path / "sweep" / "0" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "sweep" / "1").exists()  # the sweep stopped; it did not go on to the next job


def test_the_best_validation_accuracy_travels_in_the_checkpoint():
    def module() -> LitClassifier:
        return LitClassifier(nn.Linear(2, 2), partial(torch.optim.SGD, lr=0.1), num_classes=2)

    trained = module()
    trained.val_acc_best.update(torch.tensor(0.8))
    resumed = module()
    resumed.load_state_dict(trained.state_dict())
    resumed.val_acc_best.update(torch.tensor(0.5))  # a worse epoch after the resume
    assert float(resumed.val_acc_best.compute()) == pytest.approx(0.8)


@pytest.mark.slow
def test_a_sweep_job_with_nothing_to_resume_starts_from_scratch(cifar_root, tmp_path):
    # A cluster job gets `ckpt_path=last` on its first run as well as after a re-queue.
    sweep = tmp_path / "sweep"
    args = train_args(cifar_root, tmp_path, "ckpt_path=last", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}")
    result = run_cli("lit_cifar.train", "-m", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((sweep / "0" / "metrics.json").read_text())["status"] == "ok"


def test_resume_without_last_checkpoint_names_the_missing_file(cifar_root, tmp_path):
    result = run_cli("lit_cifar.train", *train_args(cifar_root, tmp_path / "new", "ckpt_path=last"))
    assert result.returncode == 2
    assert f"error: nothing to resume: {tmp_path / 'new' / 'checkpoints' / 'last.ckpt'} does not exist" in result.stderr
    assert not (tmp_path / "new" / "checkpoints").exists()


def test_interrupted_save_leaves_the_previous_checkpoint_whole(tmp_path):
    last = tmp_path / "last.ckpt"
    last.write_bytes(b"the checkpoint of the previous epoch")

    def save_checkpoint(path, weights_only=False):  # dies half-way through writing, as a kill would
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    trainer = SimpleNamespace(save_checkpoint=save_checkpoint, global_step=3, is_global_zero=True, loggers=[])
    with pytest.raises(KeyboardInterrupt):
        ResumableCheckpoint(dirpath=tmp_path)._save_checkpoint(trainer, str(last))
    assert last.read_bytes() == b"the checkpoint of the previous epoch"
