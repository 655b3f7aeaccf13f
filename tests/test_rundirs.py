"""A run dir is never written by two runs, and a start that fails leaves nothing behind."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli, tiny_cifar_overrides

from lit_cifar.run.dirs import claim_new_dir, held, in_use


def test_claiming_a_taken_name_takes_the_next_free_one(tmp_path):
    base = str(tmp_path / "2026-11-23" / "14-05-09")
    assert [claim_new_dir(base) for _ in range(3)] == [base, f"{base}-2", f"{base}-3"]


def test_a_held_folder_is_in_use_until_released(tmp_path):
    assert not in_use(tmp_path)
    with held(tmp_path):
        assert in_use(tmp_path)
    assert not in_use(tmp_path)


def start_both(cifar_root: Path, *args: str) -> None:
    """Two trainings started at once, with seeds 1 and 2; both must succeed."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    fixed = [*tiny_cifar_overrides(cifar_root), "trainer.fast_dev_run=true", "model=two_layer_fc", "model.hidden=8"]
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "lit_cifar.train", *args, *fixed, f"seed={seed}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for seed in (1, 2)
    ]
    for start in starts:
        assert start.wait(timeout=300) == 0, start.stderr.read()[-2000:]


def seed_of(run_dir: Path) -> int:
    """The seed of the run in `run_dir`, which its record and its metrics must agree on."""
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    seed = json.loads((run_dir / "metrics.json").read_text())["seed"]
    assert f"seed={seed}" in overrides
    return seed


# Both starts name their folder as the defaults do (lit_cifar.claim), with the same timestamp.
@pytest.mark.slow
def test_two_runs_started_in_the_same_second_get_a_folder_each(cifar_root, tmp_path):
    start_both(cifar_root, f"hydra.run.dir=${{lit_cifar.claim:{tmp_path / 'outputs' / 'same'}}}")
    folders = sorted((tmp_path / "outputs").iterdir())
    assert [f.name for f in folders] == ["same", "same-2"]
    assert sorted(seed_of(folder) for folder in folders) == [1, 2]


@pytest.mark.slow
def test_two_sweeps_started_in_the_same_second_get_a_folder_each(cifar_root, tmp_path):
    start_both(cifar_root, "-m", "optim.lr=1e-3,2e-3", f"hydra.sweep.dir=${{lit_cifar.claim:{tmp_path / 'same'}}}")
    sweeps = sorted(tmp_path.glob("same*"))
    assert [s.name for s in sweeps] == ["same", "same-2"]
    seeds = []
    for sweep_dir in sweeps:  # each sweep's jobs, and its table, in its own folder
        jobs = sorted(p.name for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())
        assert jobs == ["optim.lr=0.001", "optim.lr=0.002"]
        seeds.append({seed_of(sweep_dir / job) for job in jobs})
        assert (sweep_dir / "results.md").is_file()
    assert sorted(tuple(s) for s in seeds) == [(1,), (2,)]  # each sweep's jobs all ran with its own seed


def test_a_run_dir_in_use_by_a_live_run_is_refused(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train.log").write_text("the other run's log\n")
    with held(run_dir):
        result = run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {run_dir} is in use by a run that is still going; wait for it to end, or pick another folder\n"
    )
    assert [p.name for p in run_dir.iterdir()] == ["train.log"]
    assert (run_dir / "train.log").read_text() == "the other run's log\n"


@pytest.mark.parametrize("module", ["lit_cifar.train", "lit_cifar.evaluate"])
def test_a_start_that_fails_leaves_no_folder(cifar_root, tmp_path, module):
    args = [*tiny_cifar_overrides(cifar_root), "optim.lr=-1"] if module == "lit_cifar.train" else []
    result = run_cli(module, *args, cwd=tmp_path)  # the default run dir, under outputs/ in the working dir
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    left = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "outputs").rglob("*"))
    assert left in ([], ["outputs/evaluate"])  # not even an empty DATE/TIME folder


def test_a_start_that_fails_in_a_folder_of_the_users_leaves_that_folder(cifar_root, tmp_path):
    mine = tmp_path / "experiments"  # empty, and the working directory
    mine.mkdir()
    result = run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), "optim.lr=-1", "hydra.run.dir=a",
                     cwd=mine)  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    assert mine.is_dir() and not list(mine.iterdir())
