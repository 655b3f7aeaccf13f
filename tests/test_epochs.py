"""Epochs are counted one way wherever a person reads them: from 1, the first epoch being epoch 1."""

from pathlib import Path
from types import SimpleNamespace

from conftest import run_cli, tiny_cifar_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_cifar.callbacks.progress import EpochProgressBar
from lit_cifar.reporting import table


def scalar_steps(log_dir: Path, tag: str) -> list[int]:
    (events_dir,) = {p.parent for p in log_dir.rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_a_two_epoch_run_names_its_epochs_1_and_2_in_its_log_checkpoints_tensorboard_and_table(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"]
    result = run_cli("lit_cifar.train", *args, "+callbacks.model_checkpoint.save_top_k=-1")
    assert result.returncode == 0, result.stderr[-3000:]

    log = (run_dir / "train.log").read_text()
    assert "epoch 1/2  train loss" in log and "epoch 2/2  train loss" in log and "epoch 0/" not in log
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "epoch_001.ckpt",
        "epoch_002.ckpt",
        "last.ckpt",
    ]
    assert scalar_steps(run_dir / "tensorboard", "val/acc") == [1, 2]
    assert scalar_steps(run_dir / "tensorboard", "train/acc") == [1, 2]
    assert scalar_steps(run_dir / "tensorboard", "test/acc") == [2]  # beside the last epoch it tested after
    (row,) = table.report([run_dir], out=None)
    assert row["best_epoch"] in (1, 2)


def test_the_progress_bar_counts_the_first_of_three_epochs_as_1_of_3():
    bar = EpochProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=3)
    assert bar._get_train_description(0).strip() == "Epoch 1/3"
    assert bar._get_train_description(2).strip() == "Epoch 3/3"
