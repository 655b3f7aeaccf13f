"""A run dir is never written by two runs, and a start that fails leaves nothing behind."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, run_cli, tiny_cifar_overrides

from lit_cifar.rundir import claim_new_dir, held, in_use


def test_claiming_a_taken_name_takes_the_next_free_one(tmp_path):
    base = str(tmp_path / "2026-11-23" / "14-05-09")
    assert [claim_new_dir(base) for _ in range(3)] == [base, f"{base}-2", f"{base}-3"]


def test_a_held_folder_is_in_use_until_released(tmp_path):
    assert not in_use(tmp_path)
    with held(tmp_path):
        assert in_use(tmp_path)
    assert not in_use(tmp_path)


@pytest.mark.slow
def test_two_starts_in_the_same_second_get_a_folder_each(cifar_root, tmp_path):
    # Both name their run dir as the default does, with the same timestamp: the second start must not share it.
    same = f"hydra.run.dir=${{lit_cifar.claim:{tmp_path / 'outputs' / 'same'}}}"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "lit_cifar.train", *tiny_cifar_overrides(cifar_root), "trainer.fast_dev_run=true"]
            + ["model=two_layer_fc", f"seed={seed}", same],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for seed in (1, 2)
    ]
    for start in starts:
        assert start.wait(timeout=300) == 0, start.stderr.read()[-2000:]
    folders = sorted((tmp_path / "outputs").iterdir())
    assert [f.name for f in folders] == ["same", "same-2"]
    seeds = []
    for folder in folders:  # each folder holds one run: its own record next to its own metrics
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        seed = json.loads((folder / "metrics.json").read_text())["seed"]
        assert f"seed={seed}" in overrides
        seeds.append(seed)
    assert sorted(seeds) == [1, 2]


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
