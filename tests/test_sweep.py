import csv
import json
import signal
from pathlib import Path

import pytest
from conftest import REPO, WEEK11_HPARAMS, file_hashes, killed_at, run_cli, tiny_cifar_overrides
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lit_cifar import report
from lit_cifar.reporting import table
from lit_cifar.run.commands import python
from lit_cifar.run.dirs import held
from lit_cifar.run.errors import UserError
from lit_cifar.run.folders import SweepRecord
from lit_cifar.run.overrides import overrides_of
from lit_cifar.sweep.jobs import parallel_share
from lit_cifar.sweep.overrides import run_name

QUICK = ["model=week11_cnn", "trainer.max_epochs=2", "trainer.limit_train_batches=3"]


def sweep(tmp_path: Path, cifar_root: Path, *args: str):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "lit_cifar.train", "-m", *tiny_cifar_overrides(cifar_root), *QUICK, *args, f"hydra.sweep.dir={sweep_dir}"
    )
    return result, sweep_dir


def metrics(job_dir: Path) -> dict:
    return json.loads((job_dir / "metrics.json").read_text())


def hparams_and_scalars(log_dir: Path) -> tuple[dict, dict[str, float]]:
    """The HParams a TensorBoard run recorded, and the last value of each of its scalars."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info
    params = {
        name: value.number_value if value.HasField("number_value") else value.string_value
        for name, value in start.hparams.items()
    }
    return params, {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}


def test_parallel_jobs_split_the_cores():  # which GPU a job takes: tests/test_devices.py
    assert parallel_share(n_jobs=4, n_cpus=16) == 4
    assert parallel_share(n_jobs=3, n_cpus=2) == 1  # never below one thread


def test_run_names_hold_the_swept_values_sorted_by_key():
    overrides = overrides_of(
        ["data.root=/tmp/x", "optim.lr=0.002", "+trainer.fast_dev_run=true", "data.batch_size=512"], as_written=True
    )
    assert overrides["trainer.fast_dev_run"] == "true"
    assert run_name(["optim.lr", "data.batch_size"], overrides, "3") == "data.batch_size=512,optim.lr=0.002"
    assert run_name(["data.root"], overrides, "3") == "data.root=_tmp_x"  # no sub-folders in a run name
    assert run_name([], overrides, "3") == "3"
    long = run_name(["data.root"], {"data.root": "d" * 300}, "3")  # a folder name holds 255 bytes at most
    assert len(long) < 255 and long.startswith("data.root=ddd")
    assert long != run_name(["data.root"], {"data.root": "d" * 299}, "3")


def test_swept_keys_come_from_sweep_syntax_and_sweeper_params(tmp_path):
    OmegaConf.save(
        {
            "hydra": {
                "overrides": {"task": ["data.root=/x", "optim.lr=1e-3,2e-3", "seed=range(0,3)"]},
                "sweeper": {"params": {"model.dropout": "0.1,0.2", "optim.lr": "1e-4,1e-3"}},
            }
        },
        tmp_path / "multirun.yaml",
    )
    assert SweepRecord.load(tmp_path).swept_keys == ["model.dropout", "optim.lr", "seed"]
    with pytest.raises(UserError, match="not a sweep dir"):
        SweepRecord.load(tmp_path / "nothing")


def test_report_of_a_folder_without_jobs_is_a_one_line_error(tmp_path, capsys):
    OmegaConf.save({"hydra": {"overrides": {"task": []}, "sweeper": {}}}, tmp_path / "multirun.yaml")
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path} holds no jobs (no */.hydra/overrides.yaml); did the sweep start?\n"
    )


def test_named_sweeps_and_the_slurm_launcher_compose():
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", ["sweep=dropout_gamma", "hydra/launcher=slurm"], return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params == {"model.dropout": "0.0,0.2,0.4", "scheduler.gamma": "0.1,0.2,0.5"}
    assert cfg.scheduler._target_.endswith("StepLR")  # gamma exists only with scheduler=step
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node) == (None, 1)  # a CPU job unless asked
    assert launcher.max_num_timeout > 0 and launcher.array_parallelism > 1 and launcher.timeout_min > 0


@pytest.mark.slow
def test_four_job_sweep_writes_job_dirs_table_csv_plot_and_hparams(tmp_path, cifar_root):
    result, sweep_dir = sweep(tmp_path, cifar_root, "optim.lr=1e-3,2e-3", "data.batch_size=8,16")
    assert result.returncode == 0, result.stderr[-3000:]

    names = sorted(f"data.batch_size={bs},optim.lr={lr}" for lr in ("0.001", "0.002") for bs in (8, 16))
    assert sorted(p.name for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()) == names
    for name in names:
        assert (sweep_dir / name / "checkpoints" / "last.ckpt").is_file()
        assert metrics(sweep_dir / name)["status"] == "ok"
    with (sweep_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["optim.lr"], r["data.batch_size"]) for r in rows} == {
        (lr, bs) for lr in ("0.001", "0.002") for bs in ("8", "16")
    }
    best = [float(r["val/acc_best"]) for r in rows]
    assert best == sorted(best, reverse=True)
    for row in rows:
        job = metrics(sweep_dir / row["job"])
        assert float(row["test/acc"]) == job["metrics"]["test/acc"] and row["status"] == "ok"
        assert row["best_epoch"] in ("1", "2")

    table = (sweep_dir / "results.md").read_text().split("## Runs\n\n")[1].split("\nbest: ")[0]
    assert table.splitlines()[0] == (
        "| job | optim.lr | data.batch_size | best_epoch | val/acc_best | 95% interval | vs best | test/acc "
        "| wall_time_s | status | reason |"
    )
    assert len(table.splitlines()) == 2 + 4 and table in result.stdout
    assert (sweep_dir / "results.png").read_bytes()[:4] == b"\x89PNG"

    assert sorted(p.name for p in (sweep_dir / "tensorboard").iterdir() if p.is_dir()) == names
    job = metrics(sweep_dir / "data.batch_size=16,optim.lr=0.002")["metrics"]
    params, scalars = hparams_and_scalars(sweep_dir / "tensorboard" / "data.batch_size=16,optim.lr=0.002")
    run = {"run": "data.batch_size=16,optim.lr=0.002", "status": "ok", "epochs": 2}  # written at the run's end
    assert params == {**WEEK11_HPARAMS, "max_epochs": 2, **run}
    assert scalars["val/acc_best"] == pytest.approx(job["val/acc_best"])  # the final value, not a placeholder
    assert scalars["test/acc"] == pytest.approx(job["test/acc"])

    again = run_cli("lit_cifar.report", str(sweep_dir))  # on demand: the same table
    assert again.returncode == 0 and table in again.stdout


@pytest.mark.slow
def test_a_parallel_job_starts_its_dataloader_workers(tmp_path, cifar_root):
    # loky makes its own start method the default in the process a job runs in; a DataLoader cannot start with it
    result, sweep_dir = sweep(
        tmp_path, cifar_root, "seed=0,1", "data.num_workers=1", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [metrics(sweep_dir / f"seed={seed}")["status"] for seed in (0, 1)] == ["ok", "ok"]


def test_jobs_that_all_failed_alike_are_one_line_naming_a_few_and_their_one_reason(tmp_path):
    # a data.root without the data: every job fails at its start, and the line says why once
    result, sweep_dir = sweep(tmp_path, tmp_path / "nowhere", "optim.lr=1e-3,2e-3,3e-3,4e-3,5e-3")
    assert result.returncode == 1
    reason = metrics(sweep_dir / "optim.lr=0.001")["reason"]
    assert reason.startswith("CIFAR-10 not found in ")
    assert result.stderr.splitlines()[-1] == (
        "error: 5 of 5 jobs did not finish (optim.lr=0.001, optim.lr=0.002, optim.lr=0.003 and 2 more), "
        f"each: {reason}; see the status column"
    )


@pytest.mark.slow
def test_a_failing_job_is_recorded_the_others_finish_and_the_sweep_exits_1(tmp_path, cifar_root):
    result, sweep_dir = sweep(
        tmp_path, cifar_root, "optim.lr=-1,1e-3,2e-3", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"
    )
    assert result.returncode == 1
    assert "error: 1 of 3 jobs did not finish (optim.lr=-1); see the status column" in result.stderr
    assert metrics(sweep_dir / "optim.lr=-1") == {
        "status": "failed",
        "reason": "optim.lr=-1 must be a positive number, e.g. optim.lr=1e-3",
    }
    assert [metrics(sweep_dir / f"optim.lr={lr}")["status"] for lr in ("0.001", "0.002")] == ["ok", "ok"]
    keys, rows, _ = table.collect(SweepRecord.load(sweep_dir))
    assert keys == ["optim.lr"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"] and rows[-1]["job"] == "optim.lr=-1"


@pytest.mark.slow
def test_named_sweep_runs_without_m_and_a_command_line_value_wins(tmp_path, cifar_root):
    result, sweep_dir = sweep(
        tmp_path,
        cifar_root,
        "sweep=dropout_gamma",
        "model.dropout=0.3",
        "scheduler.gamma=0.5,0.9",
        "trainer.fast_dev_run=true",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [
        overrides_of(list(OmegaConf.load(p)), as_written=True)
        for p in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"))
    ]
    assert [(job["model.dropout"], job["scheduler.gamma"]) for job in jobs] == [("0.3", "0.5"), ("0.3", "0.9")]


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep(tmp_path, cifar_root):
    result, sweep_dir = sweep(
        tmp_path, cifar_root, "optim.lr=1e-3", "hydra/launcher=submitit_local", "trainer.fast_dev_run=true"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics(sweep_dir / "0")["status"] == "smoke"  # trainer.fast_dev_run: a smoke run, recorded as such
    assert (sweep_dir / "results.csv").is_file()


def job_dir(sweep_dir: Path, lr: str, batch_size: int) -> Path:
    return sweep_dir / f"data.batch_size={batch_size},optim.lr={lr}"


@pytest.mark.slow
def test_a_killed_sweep_re_run_skips_finished_jobs_resumes_the_killed_one_then_extends(
    tmp_path, cifar_root, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    grid = ["seed=3", "trainer.deterministic=true", "data.batch_size=8,16"]
    whole, reference = sweep(tmp_path / "reference", cifar_root, *grid, "optim.lr=1e-3,2e-3")
    assert whole.returncode == 0, whole.stderr[-3000:]

    # Jobs run batch size major; job 2 (batch 16, lr 1e-3: 3 steps per epoch) is killed -9 in its second epoch,
    # which kills the whole sweep.
    kill = killed_at(4, signal.SIGKILL, once=tmp_path / "killed-once", job=2)
    killed, sweep_dir = sweep(tmp_path, cifar_root, *grid, *kill, "optim.lr=1e-3,2e-3")
    assert killed.returncode == -signal.SIGKILL
    _, rows, _ = table.collect(SweepRecord.load(sweep_dir))
    assert {r["job"]: r["status"] for r in rows} == {
        "data.batch_size=8,optim.lr=0.001": "ok",
        "data.batch_size=8,optim.lr=0.002": "ok",
        "data.batch_size=16,optim.lr=0.001": "interrupted",
        "data.batch_size=16,optim.lr=0.002": "pending",
    }
    finished = {lr: file_hashes(job_dir(sweep_dir, lr, 8)) for lr in ("0.001", "0.002")}

    again, _ = sweep(tmp_path, cifar_root, *grid, *kill, "optim.lr=1e-3,2e-3")  # the same command
    assert again.returncode == 0, again.stderr[-3000:]
    assert {lr: file_hashes(job_dir(sweep_dir, lr, 8)) for lr in ("0.001", "0.002")} == finished
    resumed, expected = (metrics(job_dir(d, "0.001", 16))["metrics"] for d in (sweep_dir, reference))
    for name in ("val/acc_best", "val/loss", "test/acc", "test/loss"):
        assert resumed[name] == pytest.approx(expected[name], abs=1e-6), name
    assert metrics(job_dir(sweep_dir, "0.002", 16))["status"] == "ok"  # never started before

    # A wider grid trains only its new jobs, in new folders; `lit_cifar.rerun` is the short form of the command.
    before = {d.name: file_hashes(d) for d in sweep_dir.iterdir() if (d / ".hydra").is_dir()}
    wider = run_cli("lit_cifar.rerun", str(sweep_dir), "optim.lr=1e-3,2e-3,3e-3", kill[0])  # its own callback's code
    assert wider.returncode == 0, wider.stderr[-3000:]
    after = {d.name: file_hashes(d) for d in sweep_dir.iterdir() if (d / ".hydra").is_dir()}
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == ["data.batch_size=16,optim.lr=0.003", "data.batch_size=8,optim.lr=0.003"]
    with (sweep_dir / "results.csv").open() as f:
        assert sorted(r["status"] for r in csv.DictReader(f)) == ["ok"] * 6


@pytest.mark.slow
def test_a_sweep_dir_in_use_or_of_other_settings_is_refused_untouched(tmp_path, cifar_root):
    first, sweep_dir = sweep(tmp_path, cifar_root, "optim.lr=1e-3,2e-3", "trainer.fast_dev_run=true")
    assert first.returncode == 0, first.stderr[-3000:]
    before = file_hashes(sweep_dir)

    other, _ = sweep(tmp_path, cifar_root, "optim.lr=1e-3,2e-3", "trainer.fast_dev_run=true", "model=two_layer_fc")
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert f"error: {sweep_dir} holds a sweep of other settings: model: week11_cnn -> two_layer_fc;" in other.stderr
    wider_keys, _ = sweep(tmp_path, cifar_root, "optim.lr=1e-3,2e-3", "trainer.fast_dev_run=true", "seed=1,2")
    assert wider_keys.returncode == 2 and "swept keys: optim.lr -> optim.lr, seed" in wider_keys.stderr
    assert (
        f"to give its settings more seeds: {python()} -m lit_cifar.rerun {sweep_dir} --top K --seeds N"
        in wider_keys.stderr
    )
    shorter, _ = sweep(tmp_path, cifar_root, "optim.lr=1e-3,2e-3", "trainer.fast_dev_run=true", "trainer.max_epochs=1")
    assert shorter.returncode == 2 and "trainer.max_epochs: 2 -> 1 (it may only be raised)" in shorter.stderr

    with held(sweep_dir):  # another sweep into this folder is still going
        busy, _ = sweep(tmp_path, cifar_root, "optim.lr=1e-3,2e-3", "trainer.fast_dev_run=true")
    assert busy.returncode == 2
    assert (
        busy.stderr
        == f"error: {sweep_dir} is in use by a sweep that is still going; wait for it to end, or pick another folder\n"
    )
    assert file_hashes(sweep_dir) == before


@pytest.mark.slow
def test_a_parallel_job_whose_process_dies_fails_alone_and_resumes_when_asked(tmp_path, cifar_root, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    args = ["optim.lr=1e-3,2e-3,3e-3", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
    kill = killed_at(2, signal.SIGKILL, once=tmp_path / "killed-once", job=1)  # the process of job 1 dies
    result, sweep_dir = sweep(tmp_path, cifar_root, *args, *kill)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: 1 of 3 jobs did not finish (optim.lr=0.002); see the status column" in result.stderr
    died = metrics(sweep_dir / "optim.lr=0.002")
    assert died["status"] == "failed" and died["reason"].startswith("its process died (exit code {SIGKILL(-9)}: ")
    assert "\n" not in died["reason"]  # one line, so that the table keeps its rows
    assert [metrics(sweep_dir / f"optim.lr={lr}")["status"] for lr in ("0.001", "0.003")] == ["ok", "ok"]
    assert "| failed |" in (sweep_dir / "results.md").read_text()

    again, _ = sweep(tmp_path, cifar_root, *args, *kill, "rerun_failed=true")
    assert again.returncode == 0, again.stderr[-3000:]
    assert metrics(sweep_dir / "optim.lr=0.002")["status"] == "ok"


def test_rerun_needs_a_sweep_dir(tmp_path):
    result = run_cli("lit_cifar.rerun", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path} is not a sweep dir (no multirun.yaml); pass a multirun/DATE/TIME folder"
    ]
