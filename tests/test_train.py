import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli, tiny_cifar_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))


def job_results(sweep_dir: Path, swept: int) -> dict[str, dict | None]:
    """{"model=week11_cnn": contents of metrics.json} for every job of a multirun, keyed by the
    job's first `swept` overrides."""
    results = {}
    for job in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()):
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        metrics = job / "metrics.json"
        results[",".join(overrides[:swept])] = json.loads(metrics.read_text()) if metrics.exists() else None
    return results


@pytest.mark.slow
def test_every_model_config_passes_a_fast_dev_run(cifar_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("lit_cifar.train", "-m", f"model={','.join(MODELS)}", "trainer.fast_dev_run=true",
                   *tiny_cifar_overrides(cifar_root), f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = job_results(sweep, swept=1)
    assert sorted(results) == [f"model={m}" for m in MODELS]
    for overrides, record in results.items():
        assert record is not None, f"{overrides} wrote no metrics.json"
        assert 0.0 <= record["metrics"]["test/acc"] <= 1.0, overrides


@pytest.mark.slow
def test_every_optimizer_and_scheduler_trains(cifar_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("lit_cifar.train", "-m", "model=week11_cnn", "optim=sgd,adam,adamw",
                   "scheduler=step,cosine,onecycle,none", "trainer.max_epochs=2",
                   *tiny_cifar_overrides(cifar_root), f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = job_results(sweep, swept=2)
    assert len(results) == 12 and all(results.values())


@pytest.mark.slow
def test_a_run_leaves_config_tensorboard_checkpoints_and_metrics(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = ["model=week11_cnn", "trainer.max_epochs=3", "trainer.log_every_n_steps=1",
            *tiny_cifar_overrides(cifar_root), f"hydra.run.dir={run_dir}"]
    proc = run_cli("lit_cifar.train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]

    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert config["module"]["net"]["_target_"].endswith("Week11CNN")
    assert "model=week11_cnn" in (run_dir / ".hydra" / "overrides.yaml").read_text()

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
