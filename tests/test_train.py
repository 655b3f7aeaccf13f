import json
import math

import pytest
import yaml
from conftest import MODELS, assert_every_model_passes_a_fast_dev_run, job_results, run_cli, tiny_cifar_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@pytest.mark.slow
def test_every_model_config_passes_a_fast_dev_run(cifar_root, tmp_path):
    assert_every_model_passes_a_fast_dev_run(tiny_cifar_overrides(cifar_root), tmp_path / "sweep")


@pytest.mark.slow
def test_every_optimizer_and_scheduler_trains(cifar_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "lit_cifar.train",
        "-m",
        "model=week11_cnn",
        "optim=sgd,adam,adamw",
        "scheduler=step,cosine,onecycle,none",
        "trainer.max_epochs=2",
        *tiny_cifar_overrides(cifar_root),
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = job_results(sweep, swept=3)  # model=week11_cnn, optim=…, scheduler=…
    assert len(results) == 12 and all(results.values())


@pytest.mark.slow
def test_a_run_leaves_config_tensorboard_checkpoints_and_metrics(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "model=week11_cnn",
        "trainer.max_epochs=3",
        "trainer.log_every_n_steps=1",
        *tiny_cifar_overrides(cifar_root),
        f"hydra.run.dir={run_dir}",
    ]
    proc = run_cli("lit_cifar.train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]

    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert config["model"]["_target_"].endswith("Week11CNN") and config["module"]["net"] == "${model}"
    assert "model=week11_cnn" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    log = (run_dir / "train.log").read_text()  # the resolved config, one line per group, where the run starts
    assert "optim (adam)" in log and "lr=0.001 weight_decay=0.0" in log and "max_epochs=3" in log

    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("epoch_") for name in checkpoints)

    record = json.loads((run_dir / "metrics.json").read_text())
    assert {"val/acc_best", "test/acc", "train/loss", "val/loss"} <= set(record["metrics"])
    assert record["metrics"]["val/acc_best"] >= record["metrics"]["val/acc"] - 1e-6

    events = EventAccumulator(str(next(run_dir.rglob("events.out.tfevents.*")).parent))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_step", "train/loss", "train/acc", "val/acc", "val/acc_best", "test/acc"} <= scalars
    assert any(tag.startswith("lr-") for tag in scalars)
    assert len(events.Scalars("val/acc")) == 3

    # The same run dir is not trained over unless resuming.
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").iterdir()}
    again = run_cli("lit_cifar.train", *args)
    assert again.returncode != 0 and "already holds a run" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").iterdir()} == before


def test_help_lists_every_config_group():
    proc = run_cli("lit_cifar.train", "--help")
    assert proc.returncode == 0
    for group in ("data", "model", "optim", "scheduler", "trainer", "logger", "callbacks", "experiment"):
        assert f"{group}:" in proc.stdout
    for model in MODELS:
        assert model in proc.stdout


def test_the_resolved_config_prints_without_a_run(tmp_path):
    result = run_cli("lit_cifar.train", "--cfg", "job", "--resolve", "optim.lr=0.02", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    config = yaml.safe_load(result.stdout)
    assert config["module"]["optimizer"]["lr"] == 0.02 and config["trainer"]["max_epochs"] == 20
    assert config["trainer"]["default_root_dir"] == "<run dir>"  # no folder is claimed for a printout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_true_half_precision_trains_on_the_cpu(tmp_path, cifar_root):
    """trainer.precision=bf16-true: the weights are bf16, and so must the normalized images be."""
    result = run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=1",
                     "trainer.precision=bf16-true", f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "ok"


def test_the_step_loss_is_written_every_log_every_n_steps(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(
        "lit_cifar.train", "model=two_layer_fc", "model.hidden=8", "trainer.max_epochs=2",
        "trainer.log_every_n_steps=2", *tiny_cifar_overrides(cifar_root), f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = EventAccumulator(str(next(run_dir.rglob("events.out.tfevents.*")).parent))
    events.Reload()
    steps = 2 * (80 // 16)  # the fixture's 100 training images, 20 held out, batches of 16
    written = events.Scalars("train/loss_step")
    assert len(written) == steps // 2 and all(math.isfinite(event.value) for event in written)
