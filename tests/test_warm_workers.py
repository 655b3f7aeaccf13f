"""The parallel launcher keeps its worker processes warm: a worker runs one job after another (imports paid once),
a job's numbers are the same as in a process of its own, and a job whose process dies still fails alone."""

import json
import os
import signal
from pathlib import Path

import pytest
from conftest import killed_at, run_cli, run_in_process, tiny_cifar_overrides

QUICK = ["model=week11_cnn", "trainer.max_epochs=1", "hydra/launcher=parallel", "hydra.launcher.n_jobs=1"]


def metrics(job_dir: Path) -> dict:
    return json.loads((job_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_one_worker_runs_the_jobs_one_after_another_with_the_numbers_of_a_fresh_process(
    tmp_path, cifar_root, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    pids, sweep_dir = tmp_path / "pids", tmp_path / "sweep"
    kill = killed_at(2, signal.SIGKILL, once=tmp_path / "killed-once", job=1)  # the process of job 1 dies
    common = [*tiny_cifar_overrides(cifar_root), *QUICK]
    done = run_cli(
        "lit_cifar.train", "-m", *common, "seed=0,1,2,3", "+callbacks.pid._target_=conftest.WritesPid",
        f"+callbacks.pid.path={pids}", *kill, f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert done.returncode == 1 and "error: 1 of 4 jobs did not finish (seed=1)" in done.stderr
    ran = dict(line.split() for line in pids.read_text().splitlines())
    assert ran["0"] == ran["1"]  # job 0's worker ran job 1, which died in it (and failed alone) ...
    assert ran["2"] == ran["3"] != ran["1"]  # ... and a new worker ran the rest, one job after another
    assert [metrics(sweep_dir / f"seed={seed}")["status"] for seed in range(4)] == ["ok", "failed", "ok", "ok"]

    single = run_cli("lit_cifar.train", *common[:-2], "seed=3", f"hydra.run.dir={tmp_path / 'single'}")
    assert single.returncode == 0, single.stderr[-3000:]
    assert metrics(sweep_dir / "seed=3")["metrics"] == metrics(tmp_path / "single")["metrics"]


@pytest.mark.slow
def test_a_search_launched_a_batch_at_a_time_keeps_its_workers_warm_between_batches(tmp_path, cifar_root, monkeypatch):
    """A search asks its sampler for a batch of trials at a time, each batch one launch: a trial after the first
    runs in a worker that ran one before (its imports and data already paid). The workers end with the search."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    pids, before = tmp_path / "pids", children()
    search = run_in_process(
        "lit_cifar.train", "-m", *tiny_cifar_overrides(cifar_root), *QUICK, "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=3", "hydra/sweeper/pruner=none", "optim.lr=tag(log,interval(1e-4,1e-2))",
        "+callbacks.pid._target_=conftest.WritesPid", f"+callbacks.pid.path={pids}",
        f"hydra.sweep.dir={tmp_path / 'search'}",
    )  # fmt: skip
    assert search.returncode == 0, search.stderr[-3000:]
    ran = dict(line.split() for line in pids.read_text().splitlines())
    assert len(ran) == 3 and len(set(ran.values())) == 1, ran  # one worker ran the three one-trial batches
    assert children() == before


def children() -> set[int]:
    """The processes this one started that still run, but the resource trackers (one each for loky and for
    multiprocessing, for the life of the process that first needs it)."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            tracker = b"resource_tracker" in (proc / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
        if parent == os.getpid() and not tracker:
            found.add(int(proc.name))
    return found
