"""Stop a run (kill -9, SIGTERM, Ctrl-C), resume it in its own run dir and get the numbers of an uninterrupted
run; a resume is exact or refused; a finished run is left as it is, or extended when max_epochs is raised."""

import json
import math
import shutil
import signal
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import file_hashes, killed_at, run_cli, tiny_cifar_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from lit_cifar.callbacks.checkpoint import ResumableCheckpoint
from lit_cifar.run.commands import python
from lit_cifar.training.module import LitClassifier

TESTS = Path(__file__).parent
# 80 training images in batches of 16 with drop_last: 5 steps per epoch.
STEPS_PER_EPOCH = 5


def train_args(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        *tiny_cifar_overrides(root),
        "seed=7",
        "trainer.deterministic=true",
        "trainer.max_epochs=3",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def final_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def last_step(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    """The data and the run dir of a whole 3-epoch run, trained once for the tests that compare with it."""
    from conftest import write_cifar

    root = write_cifar(tmp_path_factory.mktemp("whole") / "data")
    run_dir = root.parent / "run"
    assert run_cli("lit_cifar.train", *train_args(root, run_dir)).returncode == 0
    return root, run_dir


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_stopped_run_resumes_from_its_last_epoch_to_the_same_metrics(uninterrupted, tmp_path, monkeypatch, signum):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    root, whole = uninterrupted
    killed = tmp_path / "killed"
    kill = killed_at(STEPS_PER_EPOCH + 2, signum, once=tmp_path / "killed-once")  # in the second epoch
    first = run_cli("lit_cifar.train", *train_args(root, killed, *kill))
    if signum == signal.SIGKILL:
        assert first.returncode == -signal.SIGKILL
    else:  # a clean stop: the status a shell gives a process the signal killed, and the command that goes on
        assert first.returncode == 128 + signum, first.stderr[-2000:]
        resume = f"ckpt_path=last hydra.run.dir={killed}"
        go_on = f"error: stopped by {signum.name}; go on from its last finished epoch with: {python()} -m"
        assert go_on in first.stderr
        assert first.stderr.strip().endswith(resume) and "Traceback" not in first.stderr
    assert last_step(killed) == STEPS_PER_EPOCH  # the end of the first epoch, never mid-epoch
    assert not (killed / "metrics.json").exists() and not list((killed / "checkpoints").glob("*.partial"))

    resumed = run_cli("lit_cifar.train", *train_args(root, killed, *kill, "ckpt_path=last"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # Same data order, augmentation and dropout after the resume (the RNG states are in the checkpoint),
    # so the metrics agree to float rounding; the tolerance only allows for summation order.
    expected, got = final_metrics(whole), final_metrics(killed)
    for name in ("val/acc_best", "val/loss", "train/loss", "test/acc", "test/loss"):
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name
    # The resumed run logs on into the same TensorBoard folder, not a new version.
    assert [p.name for p in (killed / "tensorboard").iterdir() if p.is_dir()] == []


@pytest.mark.slow
def test_last_checkpoint_is_written_in_epochs_that_did_not_improve(cifar_root, tmp_path, monkeypatch):
    # With a learning rate this small val/acc never changes, so only the first epoch saves a best checkpoint.
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    run_dir = tmp_path / "run"
    args = train_args(cifar_root, run_dir, "optim.lr=1e-12", "trainer.max_epochs=4", "scheduler=none")
    killed = run_cli("lit_cifar.train", *args, *killed_at(3 * STEPS_PER_EPOCH + 2, signal.SIGKILL))
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in (run_dir / "checkpoints").glob("epoch_*")] == ["epoch_001.ckpt"]
    assert last_step(run_dir) == 3 * STEPS_PER_EPOCH  # the epoch before the kill, not the last improvement


@pytest.mark.slow
def test_a_resume_that_would_change_training_is_refused_and_the_run_left_as_it_was(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("lit_cifar.train", *train_args(cifar_root, run_dir, "trainer.max_epochs=2")).returncode == 0
    before = file_hashes(run_dir)

    def start(*extra: str):
        return run_cli("lit_cifar.train", *train_args(cifar_root, run_dir, "trainer.max_epochs=2", *extra))

    refused = start()
    assert refused.returncode == 2 and "already holds a run; add ckpt_path=last" in refused.stderr
    refused = start("ckpt_path=last", "optim.lr=0.5")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (
        "holds a run trained with other settings, which a resume would mix: optim.lr: 0.001 -> 0.5;" in refused.stderr
    )
    refused = start("ckpt_path=last", "optim=sgd", "scheduler=onecycle")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    for change in ("optim.algorithm: torch.optim.Adam -> torch.optim.SGD", "module.scheduler_interval: epoch -> step"):
        assert change in refused.stderr
    refused = start("ckpt_path=last", "trainer.max_epochs=1")
    assert refused.returncode == 2 and "trainer.max_epochs: 2 -> 1 (it may only be raised)" in refused.stderr
    # What does not change the numbers may change.
    finished = start("ckpt_path=last", "data.num_workers=1", "callbacks.progress_bar=null")
    assert finished.returncode == 0 and f"{run_dir}: ok already, left as it is" in finished.stderr
    assert file_hashes(run_dir) == before

    moved = tmp_path / "moved"  # a run dir moved elsewhere is still the same run
    shutil.copytree(run_dir, moved)
    again = run_cli("lit_cifar.train", *train_args(cifar_root, moved, "trainer.max_epochs=2", "ckpt_path=last"))
    assert again.returncode == 0 and f"{moved}: ok already, left as it is" in again.stderr

    (moved / ".hydra" / "resolved.yaml").write_text("")  # a record cut short
    again = run_cli("lit_cifar.train", *train_args(cifar_root, moved, "trainer.max_epochs=2", "ckpt_path=last"))
    assert again.returncode == 2
    record = moved / ".hydra" / "resolved.yaml"
    assert again.stderr == f"error: {record} is not a readable run record; restore it, or start a new run\n"


def lr_by_step(run_dir: Path) -> dict[int, float]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {event.step: event.value for event in events.Scalars("lr-Adam")}


@pytest.mark.slow
def test_raising_max_epochs_extends_a_finished_run_on_a_replanned_schedule(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    run_dir = tmp_path / "run"
    every_step = "trainer.log_every_n_steps=1"
    kill = killed_at(3 * STEPS_PER_EPOCH + 2, signal.SIGKILL, once=tmp_path / "killed-once")  # in epoch 3
    first = run_cli("lit_cifar.train", *train_args(cifar_root, run_dir, "trainer.max_epochs=2", every_step, *kill))
    assert first.returncode == 0, first.stderr[-2000:]
    finished = final_metrics(run_dir)

    # The extension is killed in its last epoch: the run is no longer the finished 2-epoch one, and goes on.
    extend = train_args(cifar_root, run_dir, "trainer.max_epochs=4", every_step, "ckpt_path=last")
    assert run_cli("lit_cifar.train", *extend, *kill).returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / "metrics.superseded.json").read_text())["metrics"] == finished
    extended = run_cli("lit_cifar.train", *extend, *kill)
    assert extended.returncode == 0, extended.stderr[-2000:]
    assert "ok already" not in extended.stderr

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["global_step"] == 4 * STEPS_PER_EPOCH
    # Cosine over 4 epochs from where the 2-epoch run ended: 1e-3 · (1 + cos(π·e/4))/2 in epoch e = 2, 3. The
    # restored 2-epoch cosine would climb back from 0 to 1e-3; stepped on from its lr of 0, it would stay at 0.
    lr = lr_by_step(run_dir)
    for epoch in (2, 3):
        expected = 1e-3 * (1 + math.cos(math.pi * epoch / 4)) / 2
        steps = range(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)
        assert [lr[step] for step in steps] == pytest.approx([expected] * STEPS_PER_EPOCH, rel=1e-5), epoch
    assert ckpt["lr_schedulers"][0]["T_max"] == 4
    assert {"val/acc_best", "test/acc"} <= set(final_metrics(run_dir))


def test_the_best_validation_accuracy_travels_in_the_checkpoint():
    def module() -> LitClassifier:
        return LitClassifier(nn.Linear(2, 2), partial(torch.optim.SGD, lr=0.1), num_classes=2)

    trained = module()
    trained.val_acc_best.update(torch.tensor(0.8))
    resumed = module()
    resumed.load_state_dict(trained.state_dict())
    resumed.val_acc_best.update(torch.tensor(0.5))  # a worse epoch after the resume
    assert float(resumed.val_acc_best.compute()) == pytest.approx(0.8)
    assert module().best_val_acc() is None


@pytest.mark.slow
def test_a_sweep_job_with_nothing_to_resume_starts_from_scratch(cifar_root, tmp_path):
    # A cluster job gets `ckpt_path=last` on its first run as well as after a re-queue.
    sweep = tmp_path / "sweep"
    args = train_args(cifar_root, tmp_path, "ckpt_path=last", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}")
    result = run_cli("lit_cifar.train", "-m", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((sweep / "0" / "metrics.json").read_text())["status"] == "ok"


def test_resume_into_a_new_folder_is_refused_and_leaves_no_folder(cifar_root, tmp_path):
    result = run_cli("lit_cifar.train", *train_args(cifar_root, tmp_path / "new", "ckpt_path=last"))
    assert result.returncode == 2
    assert f"error: nothing to resume: {tmp_path / 'new'} holds no run; pass the killed run's folder" in result.stderr
    assert not (tmp_path / "new").exists()


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
