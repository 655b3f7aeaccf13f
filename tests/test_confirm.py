"""The confirmation stage: the best settings of a sweep or search again with new seeds, in its sweep dir."""

import csv
import json
import signal
from pathlib import Path

import optuna
import pytest
from conftest import killed_at, run_cli, tiny_cifar_overrides
from omegaconf import OmegaConf
from test_report import make_run, make_sweep

from lit_cifar.reporting.confirm import confirmation_jobs
from lit_cifar.run.errors import UserError
from lit_cifar.sweep.confirmation import check_confirmation
from lit_cifar.sweep.search import journal


def result(acc: float) -> dict:
    return {"status": "ok", "metrics": {"val/acc_best": acc, "test/acc": acc}, "images": {"val": 500, "test": 846}}


def test_the_best_settings_by_their_mean_get_seeds_none_of_the_sweeps_jobs_used(tmp_path):
    sweep = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3,5e-3", "seed=0,1", "data.root=/data")
    values = {"0.001": (0.50, 0.60), "0.002": (0.58, 0.58), "0.005": (0.70, 0.30)}  # means 0.55, 0.58, 0.50
    for lr, accs in values.items():
        for seed, acc in enumerate(accs):
            make_run(sweep / f"optim.lr={lr},seed={seed}", [f"optim.lr={lr}", f"seed={seed}", "data.root=/data"],
                     result(acc))  # fmt: skip
    assert confirmation_jobs(sweep, top=2, seeds=2) == [
        ["optim.lr=0.002", "data.root=/data", f"seed={seed}", f"hydra.sweep.subdir='optim.lr=0.002,seed={seed}'"]
        for seed in (2, 3)
    ] + [
        ["optim.lr=0.001", "data.root=/data", f"seed={seed}", f"hydra.sweep.subdir='optim.lr=0.001,seed={seed}'"]
        for seed in (2, 3)
    ]  # the best run's overrides of each; seeds after the sweep's own 0 and 1


def test_a_sweep_that_holds_its_seed_fixed_confirms_with_the_next_ones(tmp_path):
    sweep = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3")
    config = OmegaConf.load(sweep / "multirun.yaml")
    config.seed = 42
    OmegaConf.save(config, sweep / "multirun.yaml")
    make_run(sweep / "optim.lr=0.001", ["optim.lr=0.001"], result(0.4))
    make_run(sweep / "optim.lr=0.002", ["optim.lr=0.002"], result(0.5))
    jobs = confirmation_jobs(sweep, top=1, seeds=1)
    assert jobs == [["optim.lr=0.002", "seed=43", "hydra.sweep.subdir='optim.lr=0.002,seed=43'"]]


@pytest.mark.parametrize(
    ("top", "seeds", "expected"),
    [
        (-1, 2, "hydra.sweeper.confirm.top=-1 must be an integer >= 0: how many of the best settings to confirm"),
        ("two", 2, "hydra.sweeper.confirm.top=two must be an integer >= 0"),
        (2, 0, "hydra.sweeper.confirm.seeds=0 must be an integer >= 1: how many new seeds each, e.g. 2"),
        (1, True, "hydra.sweeper.confirm.seeds=True must be an integer >= 1"),
    ],
)
def test_a_confirmation_setting_out_of_range_is_refused_before_any_job(top, seeds, expected):
    with pytest.raises(UserError, match=expected):
        check_confirmation(OmegaConf.create({"confirm": {"top": top, "seeds": seeds}}), ["optim.lr=1e-3,2e-3"])
    check_confirmation(OmegaConf.create({"confirm": {"top": 0, "seeds": 2}}), [])  # 0: no confirmation


def test_a_searched_seed_cannot_be_confirmed_with_new_ones():
    sweeper = OmegaConf.create({"confirm": {"top": 1, "seeds": 2}})
    with pytest.raises(UserError, match=r"seed is searched \(seed=interval\(0, 9\)\)"):
        check_confirmation(sweeper, ["optim.lr=1e-3,2e-3", "seed=interval(0, 9)"])
    check_confirmation(sweeper, ["seed=0,1,2"])  # listed seeds: the next ones are new


def test_a_sweep_without_a_finished_job_has_nothing_to_confirm(tmp_path):
    sweep = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3", "seed=0,1")
    make_run(sweep / "optim.lr=0.001,seed=0", ["optim.lr=0.001", "seed=0"], {"status": "failed", "reason": "x"})
    assert confirmation_jobs(sweep, top=1, seeds=2) == []  # the stage warns and the sweep's table is written


def test_rerun_seeds_without_top_is_a_one_line_error(tmp_path):
    sweep = make_sweep(tmp_path / "s", "optim.lr=1e-3,2e-3")
    result = run_cli("lit_cifar.rerun", str(sweep), "--seeds", "2")
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: --seeds needs --top K: how many of the best settings to confirm, e.g. --top 2 --seeds 2"
    )
    zero = run_cli("lit_cifar.rerun", str(sweep), "--top", "0")
    assert zero.returncode == 2 and "argument --top: 0 is no whole number >= 1, e.g. 2" in zero.stderr


def rows(sweep_dir) -> list[dict]:
    with (sweep_dir / "results.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_grid_with_seeds_then_rerun_top_seeds_ranks_settings_by_their_confirmed_mean(
    tmp_path, cifar_root, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    sweep_dir = tmp_path / "sweep"
    # 5 steps an epoch; the first confirmation job (job 4, after the grid's 0-3) dies -9 in its second epoch.
    kill = killed_at(7, signal.SIGKILL, once=tmp_path / "killed-once", job=4)
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=2", *kill]
    grid = run_cli("lit_cifar.train", "-m", *args, "optim.lr=1e-3,3e-3", "seed=0,1", f"hydra.sweep.dir={sweep_dir}")
    assert grid.returncode == 0, grid.stderr[-3000:]
    assert "\nbest: optim.lr=" in grid.stdout and "(t, n=2)" in grid.stdout  # a grid names its best too

    trusted = kill[0]  # the kill callback's target: rerun replays no code a folder names, so it is given again
    killed = run_cli("lit_cifar.rerun", str(sweep_dir), "--top", "1", "--seeds", "2", trusted)
    assert killed.returncode == -signal.SIGKILL
    (interrupted,) = [p for p in sweep_dir.glob("*,seed=2") if not (p / "metrics.json").exists()]
    assert (interrupted / "checkpoints" / "last.ckpt").is_file()  # its first epoch

    # Again, by jobs of the parallel launcher side by side: the killed one resumes, the other one runs.
    parallel = "hydra/launcher=parallel"
    confirm = run_cli("lit_cifar.rerun", str(sweep_dir), "--top", "1", "--seeds", "2", parallel, trusted)
    assert confirm.returncode == 0, confirm.stderr[-3000:]
    assert json.loads((interrupted / "metrics.json").read_text())["start"] == "resumed"
    best = grid.stdout.split("\nbest: ")[1].split(",")[0]  # optim.lr=0.001 or optim.lr=0.003
    new = sorted(p.name for p in sweep_dir.iterdir() if p.name.endswith(("seed=2", "seed=3")))
    assert new == [f"{best},seed=2", f"{best},seed=3"]
    assert all((sweep_dir / "tensorboard" / name).is_dir() for name in new)  # logged under its own name
    assert all(json.loads((sweep_dir / name / "metrics.json").read_text())["seed"] == int(name[-1]) for name in new)
    markdown = (sweep_dir / "results.md").read_text()
    by_setting = markdown.split("## By setting")[1].split("## Runs")[0]
    assert sorted(line.split(" | ")[1] for line in by_setting.splitlines() if line.startswith("| 0.")) == ["2", "4"]
    assert "(t, n=" in confirm.stdout.split("\nbest: ")[1].splitlines()[0]

    again = run_cli("lit_cifar.rerun", str(sweep_dir), "--top", "1", "--seeds", "2", trusted)  # nothing left to train
    assert again.returncode == 0, again.stderr[-3000:]
    # no job's process starts: the grid's 4, then the confirmation's 2, are left as they are by the sweeper
    assert "4 of 4 jobs finished already: left as they are, not started" in again.stdout
    assert "2 of 2 jobs finished already: left as they are, not started" in again.stdout
    assert "ok already" not in again.stderr and len(rows(sweep_dir)) == 6
    command = (sweep_dir / "results.md").read_text().split("- command: ")[1].splitlines()[0]
    assert "confirm" not in command  # the sweep's own command does not confirm again
    plain = run_cli("lit_cifar.rerun", str(sweep_dir), "seed=0,1,2", trusted)  # a wider seed grid: only its new jobs
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert len(rows(sweep_dir)) == 7 and "confirming" not in plain.stderr  # the other lr's seed 2 only


@pytest.mark.slow
def test_a_search_ends_with_its_confirmation_by_config_outside_the_study(tmp_path, cifar_root):
    sweep_dir = tmp_path / "search"
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=2"]
    search = ["hydra/sweeper=optuna", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=2"]
    confirm = ["hydra.sweeper.confirm.top=1", "hydra.sweeper.confirm.seeds=1"]
    result = run_cli("lit_cifar.train", "-m", *search, *confirm, *args, "optim.lr=choice(1e-3,3e-3)",
                     f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="search", storage=journal(sweep_dir))
    assert len(study.trials) == 2  # the confirmation is no trial
    (confirmation,) = [p for p in sweep_dir.iterdir() if p.name.endswith(",seed=43")]  # after the trials' seed 42
    assert confirmation.name in ("optim.lr=0.001,seed=43", "optim.lr=0.003,seed=43")
    assert json.loads((confirmation / "metrics.json").read_text())["status"] == "ok"  # never pruned as a trial
    assert "(t, n=2)" in result.stdout.split("\nbest: ")[1].splitlines()[0]
