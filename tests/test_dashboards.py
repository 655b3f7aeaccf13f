"""What a person reads of a run: its log, TensorBoard (a real server over sweeps and runs), and the plots."""

import csv
import re
from pathlib import Path

import pytest
from conftest import run_cli, tiny_cifar_overrides

EPOCH_LINE = re.compile(
    r"epoch (\d+)/(\d+)  train loss ([\d.]+) acc ([\d.]+)  val loss ([\d.]+) acc ([\d.]+) \(best ([\d.]+)\)"
    r"  lr ([\d.e+-]+)  ([\d.]+) s$"
)


def epoch_rows(csv_dir: Path) -> list[dict[str, float]]:
    """Per epoch, the epoch-level values Lightning wrote to metrics.csv (one row per logging call)."""
    epochs: dict[int, dict[str, float]] = {}
    with open(csv_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            values = {
                k: float(v)
                for k, v in row.items()
                if v and k in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")
            }
            if values and not row.get("test/acc"):
                epochs.setdefault(int(row["epoch"]), {}).update(values)
    return [epochs[e] for e in sorted(epochs)]


@pytest.mark.slow
def test_a_three_epoch_run_leaves_one_line_per_epoch_in_train_log_and_on_the_console(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = ["model=week11_cnn", "trainer.max_epochs=3", "scheduler=step", "scheduler.step_size=1", "optim.lr=0.004"]
    proc = run_cli(
        "lit_cifar.train",
        *tiny_cifar_overrides(cifar_root)[:-1],  # the default progress bar: output piped, so none is drawn
        *args,
        "logger=[tensorboard,csv]",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    lines = [m for m in map(EPOCH_LINE.search, log.splitlines()) if m]
    expected = epoch_rows(run_dir / "csv")
    assert len(lines) == len(expected) == 3
    for n, (line, row) in enumerate(zip(lines, expected, strict=True)):
        epoch, total, train_loss, train_acc, val_loss, val_acc, best, lr, seconds = line.groups()
        assert (int(epoch), int(total)) == (n + 1, 3)
        for value, name in [(train_loss, "train/loss"), (train_acc, "train/acc"), (val_loss, "val/loss")]:
            assert float(value) == pytest.approx(row[name], abs=5e-5), name
        assert float(val_acc) == pytest.approx(row["val/acc"], abs=5e-5)
        assert float(best) == pytest.approx(row["val/acc_best"], abs=5e-5)
        assert float(lr) == pytest.approx(0.004 * 0.5**n)  # StepLR halves it after every epoch
        assert float(seconds) > 0
    console = proc.stdout + proc.stderr
    assert [m.group(0) for m in map(EPOCH_LINE.search, console.splitlines()) if m] == [m.group(0) for m in lines]
    # The start names the run dir and the resolved config; none of Lightning's noise, each line once.
    assert log.index(f"run dir {run_dir}") < log.index("epoch 1/3")
    assert re.search(r"optim \(adam\) +lr=0.004 ", log)
    for noise in ("srun", "Tip", "litlogger", "MeanMetric", "MulticlassAccuracy", "Epoch 2/2"):
        assert noise not in console, noise
    assert console.count("GPU available") == 1
    assert "Week11CNN" in console  # the summary's row of the net
