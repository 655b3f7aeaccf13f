"""The logger= and callbacks= options: each logger holds what a user of that tool opens, sweep jobs are grouped
per sweep, callback options add to the default callbacks, and a missing extra is one error line."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, WEEK11_HPARAMS, run_cli, tiny_cifar_overrides
from mlflow import MlflowClient

ALL_LOGGERS = "logger=[tensorboard,csv,mlflow,wandb]"


@pytest.fixture(autouse=True)
def local_tools(monkeypatch):
    """The defaults a user gets: no tracking server, W&B offline."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


def csv_rows(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def mlflow_runs(store: Path, experiment: Path) -> dict:
    """{run name: run} of the MLflow experiment named by the run or sweep dir, read with MLflow's client."""
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name(str(experiment)).experiment_id])
    return {run.info.run_name: run for run in runs}


def wandb_run(run_dir: Path) -> dict:
    """What `wandb leet inspect` reads from a W&B offline run: state, config, summary, and its records."""

    def inspect(*args: str) -> str:
        cmd = [Path(sys.executable).parent / "wandb", "leet", "inspect", *args, str(run_dir)]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    summary = json.loads(inspect("--summary", "--json"))
    (run_record,) = [r["run"] for r in map(json.loads, inspect("--json").splitlines()) if r["type"] == "run"]
    return {**summary, "group": run_record.get("run_group")}


@pytest.mark.slow
def test_every_logger_gets_the_epochs_hyperparameters_and_final_metrics(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = ["model=week11_cnn", "optim.lr=0.002", "trainer.max_epochs=3", ALL_LOGGERS, f"hydra.run.dir={run_dir}"]
    proc = run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((run_dir / "metrics.json").read_text())["metrics"]

    rows = csv_rows(run_dir / "csv")
    assert [row["epoch"] for row in rows if row["val/acc"]] == ["0", "1", "2"]
    assert [float(row["test/acc"]) for row in rows if row["test/acc"]] == [pytest.approx(final["test/acc"])]
    assert yaml.safe_load((run_dir / "csv" / "hparams.yaml").read_text()) == WEEK11_HPARAMS

    (run,) = mlflow_runs(run_dir / "mlflow.db", run_dir).values()
    assert run.info.status == "FINISHED" and run.data.tags["run_dir"] == str(run_dir)
    assert run.data.params == {name: str(value) for name, value in WEEK11_HPARAMS.items()}
    for name in ("val/acc_best", "test/acc"):
        assert run.data.metrics[name] == pytest.approx(final[name])
    assert len(MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}").get_metric_history(run.info.run_id, "val/acc")) == 3

    (offline_run,) = (run_dir / "wandb").glob("offline-run-*")
    assert list(offline_run.glob("run-*.wandb"))
    wandb = wandb_run(offline_run)
    assert wandb["state"] == "finished" and wandb["project"] == "lit_cifar"
    assert wandb["config"] == WEEK11_HPARAMS
    for name in ("val/acc_best", "test/acc"):
        assert wandb["summary"][name] == pytest.approx(final[name])


@pytest.mark.slow
def test_make_sweep_groups_the_jobs_per_sweep_in_every_logger(cifar_root, tmp_path):
    sweep_dir = tmp_path / "sweep"
    overrides = [
        *tiny_cifar_overrides(cifar_root),
        "model=week11_cnn",
        "trainer.max_epochs=1",
        "optim.lr=0.001,0.002",
        ALL_LOGGERS,
        f"hydra.sweep.dir={sweep_dir}",
    ]
    # make's install step is a no-op: `make test` (CI) installed the venv running these tests.
    args = " ".join(f"'{o}'" for o in overrides)
    proc = subprocess.run(["make", "sweep", f"ARGS={args}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = ["optim.lr=0.001", "optim.lr=0.002"]
    assert all(json.loads((sweep_dir / job / "metrics.json").read_text())["status"] == "ok" for job in jobs)

    assert all(len([r for r in csv_rows(sweep_dir / "csv" / job) if r["val/acc"]]) == 1 for job in jobs)

    runs = mlflow_runs(sweep_dir / "mlflow.db", sweep_dir)
    assert sorted(runs) == jobs and [runs[job].data.params["lr"] for job in jobs] == ["0.001", "0.002"]

    # Hydra's basic launcher runs the jobs one after another in one process: each job is a W&B run of its own.
    wandb = [wandb_run(run) for run in sorted((sweep_dir / "wandb").glob("offline-run-*"))]
    assert sorted(w["name"] for w in wandb) == jobs
    assert all(w["group"] == str(sweep_dir) and w["state"] == "finished" for w in wandb)
    assert sorted(w["config"]["lr"] for w in wandb) == [0.001, 0.002]


@pytest.mark.slow
def test_parallel_sweep_jobs_share_one_new_mlflow_store_given_by_its_uri(cifar_root, tmp_path, monkeypatch):
    """Side by side, the jobs would corrupt a new SQLite store by creating its tables at once."""
    store, sweep_dir = tmp_path / "tracking.db", tmp_path / "sweep"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    proc = run_cli(
        "lit_cifar.train",
        "-m",
        *tiny_cifar_overrides(cifar_root),
        "model=week11_cnn",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "optim.lr=0.001,0.002",
        "logger=mlflow",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = mlflow_runs(store, sweep_dir)
    assert sorted(runs) == ["optim.lr=0.001", "optim.lr=0.002"]
    assert all(run.info.status == "FINISHED" for run in runs.values())
    assert not (sweep_dir / "mlflow.db").exists()


def test_a_second_job_creating_the_experiment_finds_it(tmp_path, monkeypatch):
    """On a tracking server, jobs of a sweep may all find no experiment and create it: one of them wins."""
    from lit_cifar.training.loggers import mlflow_logger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("sweep")  # by the job that won
    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "get_experiment_by_name", lambda self, name: None)  # this job looked before
        logger = mlflow_logger(tracking_uri=uri, experiment_name="sweep")
    assert logger.experiment_id == MlflowClient(uri).get_experiment_by_name("sweep").experiment_id


@pytest.mark.slow
def test_callback_options_add_to_the_defaults_and_early_stopping_stops(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "model=week11_cnn",
        "optim.lr=1e-12",  # val/acc cannot improve
        "trainer.max_epochs=5",
        "trainer.log_every_n_steps=1",
        "callbacks=[early_stopping,device_stats]",
        "callbacks.early_stopping.patience=1",
        "logger=[tensorboard,csv]",
        f"hydra.run.dir={run_dir}",
    ]
    proc = run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = csv_rows(run_dir / "csv")
    assert len([row for row in rows if row["val/acc"]]) == 2  # the first epoch, then one without improvement
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1  # the defaults' too
    assert any(name.startswith("DeviceStatsMonitor.") for name in rows[0])


@pytest.mark.slow
@pytest.mark.parametrize("package", ["mlflow", "wandb"])
def test_a_missing_extra_is_one_error_line(package, cifar_root, tmp_path, monkeypatch):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / f"{package}.py").write_text(f"raise ImportError('no module named {package}')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocked))
    run_dir = tmp_path / "run"
    proc = run_cli(
        "lit_cifar.train", *tiny_cifar_overrides(cifar_root), f"logger={package}", f"hydra.run.dir={run_dir}"
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: logger={package} needs the {package} package: pip install -e '.[{package}]'"
    ]
