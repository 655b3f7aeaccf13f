"""The warning a long CPU run gives early on: how long it will take, and how to make it shorter."""

import itertools
import logging
from types import SimpleNamespace

import pytest
from conftest import run_cli, tiny_cifar_overrides
from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

from lit_cifar.callbacks import run_time
from lit_cifar.callbacks.run_time import RunTimeWarning


def batches(callback: RunTimeWarning, trainer, n: int) -> None:
    callback.on_train_start(trainer, None)
    for batch_idx in range(n):
        callback.on_train_batch_end(trainer, None, None, None, batch_idx)


@pytest.mark.parametrize(
    ("max_epochs", "warning"),
    [
        # 0.5 s a batch, 100 batches an epoch: 50 s; 20 epochs less the 13 batches timed: 993.5 s
        (20, "an epoch takes about 50 s, so the 20 epochs left take about 17 min (validation not counted); "
         "for a quick look pass trainer.max_epochs=3, on a GPU trainer=gpu"),
        (10, None),  # 493.5 s: under 10 minutes
    ],
)  # fmt: skip
def test_a_long_cpu_run_is_told_its_length_once_from_the_batches_after_the_first(
    monkeypatch, caplog, max_epochs, warning
):
    clock = itertools.count(0.0, 5.0)  # read at the 3rd batch's end and the 13th's: 5 s for 10 batches
    monkeypatch.setattr(run_time.time, "perf_counter", lambda: next(clock))
    trainer = SimpleNamespace(
        accelerator=CPUAccelerator(), max_epochs=max_epochs, current_epoch=0, num_training_batches=100
    )
    with caplog.at_level(logging.WARNING):
        batches(RunTimeWarning(warn_above_min=10), trainer, 100)
    assert [r.getMessage() for r in caplog.records] == ([f"this run trains on the CPU: {warning}"] if warning else [])


def test_a_gpu_run_is_not_timed(monkeypatch, caplog):
    monkeypatch.setattr(run_time.time, "perf_counter", lambda: pytest.fail("timed"))
    trainer = SimpleNamespace(accelerator=CUDAAccelerator(), max_epochs=1000, current_epoch=0, num_training_batches=9)
    batches(RunTimeWarning(warn_above_min=0), trainer, 20)
    assert not caplog.records


def test_the_warning_is_on_the_console_and_in_the_log_of_a_real_run(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"]
    timing = ["callbacks.run_time.warn_above_min=0", "+callbacks.run_time.warmup=1", "+callbacks.run_time.batches=2"]
    result = run_cli("lit_cifar.train", *args, *timing)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if "this run trains on the CPU" in line]
    assert len(lines) == 1 and "so the 2 epochs left take about" in lines[0]
    assert lines[0].split("] - ")[-1] in (run_dir / "train.log").read_text()
