"""Sweeps through a real one-node SLURM cluster (see cluster.py), with the command a user types."""

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, killed_at, run_cli

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ON_SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.cpus_per_task=1",  # two jobs at a time on a 2-core node
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
]
STEPS = 20  # training steps per epoch


def quick(cifar_slice: Path) -> list[str]:
    return [
        "trainer=cpu",
        "model=two_layer_fc",
        "model.hidden=8",
        f"data.root={cifar_slice}",
        "data.verify_checksums=false",
        "data.download=false",
        "data.val_size=500",
        "data.num_workers=0",
        "callbacks.progress_bar=null",
        f"trainer.limit_train_batches={STEPS}",
    ]


def metrics(job_dir: Path) -> dict:
    return json.loads((job_dir / "metrics.json").read_text())


def array_id(sweep_dir: Path) -> str:
    """The SLURM job id of the sweep's job array, from submitit's folders (`.submitit/12_0`, `12_1`, …; a sweep
    of one job is a plain job, `.submitit/12`)."""
    jobs = (sweep_dir / ".submitit").iterdir()
    (array,) = {p.name.split("_")[0] for p in jobs if re.fullmatch(r"\d+(_\d+)?", p.name)}
    return array


def slurm_states(slurm, sweep_dir: Path) -> dict[str, list[str]]:
    """{array task id: its states, first attempt first} of the sweep's SLURM jobs, from accounting, once every
    job has ended (a sweep may end while its last job's process is still exiting)."""
    command = ["sacct", "-n", "-X", "-P", "--duplicates", "-j", array_id(sweep_dir), "-o", "JobID,State"]
    deadline = time.monotonic() + 30
    while True:
        states: dict[str, list[str]] = {}
        for line in slurm.run(*command).stdout.splitlines():
            job, state = line.split("|")
            states.setdefault(job, []).append(state.split()[0])
        if time.monotonic() > deadline or not {"PENDING", "RUNNING", "COMPLETING"} & {s[-1] for s in states.values()}:
            return states
        time.sleep(0.5)


def test_a_2x2_sweep_runs_as_a_job_array_and_writes_its_table(slurm, tmp_path, cifar_slice):
    sweep_dir = tmp_path / "sweep"
    grid = ["optim.lr=1e-3,2e-3", "data.batch_size=64,128"]
    args = ["-m", *ON_SLURM, *quick(cifar_slice), "trainer.max_epochs=1", *grid, f"hydra.sweep.dir={sweep_dir}"]
    result = run_cli("lit_cifar.train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    with (sweep_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["optim.lr"], r["data.batch_size"], r["status"]) for r in rows) == [
        (lr, bs, "ok") for lr in ("0.001", "0.002") for bs in ("128", "64")
    ]
    assert "| job | optim.lr | data.batch_size |" in (sweep_dir / "results.md").read_text()
    array = array_id(sweep_dir)
    assert slurm_states(slurm, sweep_dir) == {f"{array}_{n}": ["COMPLETED"] for n in range(4)}

    # The confirmation stage submits its jobs the same way: the best setting with seeds 43 and 44 (after 42).
    confirm = run_cli("lit_cifar.rerun", str(sweep_dir), "--top", "1", "--seeds", "2", cwd=tmp_path)
    assert confirm.returncode == 0, confirm.stderr[-3000:]
    confirmed = sorted(p.name for p in sweep_dir.glob("*,seed=4[34]"))
    assert len(confirmed) == 2 and all(metrics(sweep_dir / name)["status"] == "ok" for name in confirmed)
    by_setting = (sweep_dir / "results.md").read_text().split("## By setting")[1].split("## Runs")[0]
    assert sorted(line.split(" | ")[2] for line in by_setting.splitlines() if line.startswith("| 0.")) == [
        "1",
        "1",
        "1",
        "3",
    ]


def test_a_cancelled_job_fails_alone_and_the_sweep_ends(slurm, tmp_path, cifar_slice):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "lit_cifar.train", "-m", *ON_SLURM, *quick(cifar_slice)]
    command += ["trainer.max_epochs=2", "optim.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep_dir}"]
    sweep = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cancelled = sweep_dir / "optim.lr=0.001"
    deadline = time.monotonic() + 120
    while not (cancelled / ".hydra").is_dir():  # the job holds its folder: it is training
        assert sweep.poll() is None and time.monotonic() < deadline, "the first job never started"
        time.sleep(0.2)
    slurm.run("scancel", f"{array_id(sweep_dir)}_0")
    out, err = sweep.communicate(timeout=240)

    assert sweep.returncode == 1, err[-3000:]
    assert "error: 1 of 2 jobs did not finish (optim.lr=0.001); see the status column" in err
    record = metrics(cancelled)
    assert record["status"] == "failed"
    assert f"SLURM job {array_id(sweep_dir)}_0 ended CANCELLED" in record["reason"]
    assert "rerun_failed=true" in record["reason"]
    assert metrics(sweep_dir / "optim.lr=0.002")["status"] == "ok"
    table = (sweep_dir / "results.md").read_text()
    assert "| optim.lr=0.001 |" in table and "| failed |" in table


@pytest.mark.parametrize(
    ("request_", "refusal"),
    [
        ("hydra.launcher.cpus_per_task=999", "More processors requested than permitted"),
        ("hydra.launcher.gpus_per_node=1", "Invalid generic resource (gres) specification"),  # a node without GPUs
    ],
)
def test_a_request_the_cluster_cannot_meet_fails_at_submission_with_one_line(
    slurm, tmp_path, cifar_slice, request_, refusal
):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", *ON_SLURM, *quick(cifar_slice), request_, "optim.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep_dir}"]
    jobs_before = slurm.run("sacct", "-n", "-X", "-o", "JobID").stdout

    result = run_cli("lit_cifar.train", *args, cwd=tmp_path)

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: SLURM refused the sweep's jobs (") and refusal in line
    assert line.endswith(
        "check hydra.launcher.partition, cpus_per_task, mem_gb and gpus_per_node against the "
        "partition's nodes (sinfo -N -o '%P %c %m %G')"
    )
    assert slurm.run("sacct", "-n", "-X", "-o", "JobID").stdout == jobs_before  # nothing was queued
    assert not [p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()]


def test_a_preempted_job_is_requeued_and_resumes_from_its_own_last_ckpt(slurm, tmp_path, cifar_slice, monkeypatch):
    """The job signals itself with USR2 in its second epoch, as SLURM signals a job before its time limit or on
    pre-emption (--signal=USR2@signal_delay_s); submitit re-queues it and SLURM starts it again."""
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"), prepend=":")  # SignalAtStep, in the job too
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as many threads as the SLURM job, for equal numbers
    train = [*quick(cifar_slice), "trainer.max_epochs=3", "trainer.deterministic=true"]
    once = tmp_path / "signalled"
    sweep_dir = tmp_path / "sweep"
    preempted = run_cli(
        "lit_cifar.train",
        "-m",
        *ON_SLURM,
        *train,
        *killed_at(STEPS + 5, signal.SIGUSR2, once=once),
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert preempted.returncode == 0, preempted.stderr[-3000:]
    reference = run_cli(  # a process of its own, so that OMP_NUM_THREADS=1 holds as in the job
        "lit_cifar.train", "-m", *train, f"hydra.sweep.dir={tmp_path / 'reference'}", cwd=tmp_path, fresh_process=True
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    assert once.exists()
    (states,) = slurm_states(slurm, sweep_dir).values()
    assert states == ["REQUEUED", "COMPLETED"]
    log = next((sweep_dir / ".submitit").glob("*/*_log.out")).read_text()
    assert "Caught signal SIGUSR2" in log and "Requeued job" in log, log[-2000:]
    assert "Restoring states from the checkpoint path at" in log and "0/checkpoints/last.ckpt" in log, log[-2000:]
    job = metrics(sweep_dir / "0")
    uninterrupted = metrics(tmp_path / "reference" / "0")
    assert job["status"] == uninterrupted["status"] == "ok"
    assert job["metrics"] == pytest.approx(uninterrupted["metrics"], abs=1e-6)


def test_search_trials_run_as_slurm_jobs_sharing_one_study(slurm, tmp_path, cifar_slice):
    """hydra/sweeper=optuna through SLURM: the trials run as array tasks (two at a time) on the compute node,
    and each reports its epochs into the one study file in the sweep dir."""
    import optuna

    from lit_cifar.sweep.search import journal

    sweep_dir = tmp_path / "sweep"
    search = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra/sweeper/pruner=none"]
    args = ["-m", *ON_SLURM, *quick(cifar_slice), "trainer.max_epochs=2", *search,
            "optim.lr=tag(log, interval(1e-4, 1e-2))", f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    result = run_cli("lit_cifar.train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="search", storage=journal(sweep_dir))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert all(sorted(t.intermediate_values) == [1, 2] for t in study.trials)  # reported by the SLURM jobs
    assert sorted(p.name for p in sweep_dir.glob("trial-*")) == [f"trial-00{n}" for n in range(4)]
    tasks = [p.name for p in (sweep_dir / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name)]
    assert len(tasks) == 4 and len({task.split("_")[0] for task in tasks}) == 2  # two arrays of two trials
