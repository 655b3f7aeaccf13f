"""`make dashboard`: optuna-dashboard on a search's journal, checked over HTTP against a real server."""

import shlex
import subprocess
import time

import optuna
import pytest
from conftest import REPO, get, run_cli, served, tiny_cifar_overrides

from lit_cifar.sweep.search import journal


def dashboard_command(sweep_dir) -> list[str]:
    """The command `make dashboard DIR=sweep_dir` runs, up to its port's value (the test picks a free one)."""
    lines = subprocess.run(
        ["make", "-n", "dashboard", f"DIR={sweep_dir}", "PORT=0"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    (line,) = [line for line in lines if "optuna-dashboard " in line]
    command = shlex.split(line)
    assert command[-2:] == ["--port", "0"]
    return [str(REPO / command[0]), *command[1:-1]]


def search(cifar_root, sweep_dir, trials: int):
    args = ["model=week11_cnn", "trainer.max_epochs=2", "optim.lr=tag(log, interval(1e-4, 1e-2))"]
    result = run_cli(
        "lit_cifar.train", "-m", "hydra/sweeper=optuna", f"hydra.sweeper.n_trials={trials}",
        *tiny_cifar_overrides(cifar_root), *args, f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_the_dashboard_serves_a_searchs_trials_and_sees_the_search_go_on(tmp_path, cifar_root):
    sweep_dir = tmp_path / "sweep"
    search(cifar_root, sweep_dir, trials=2)
    ready = lambda url: get(f"{url}/api/studies")["study_summaries"] is not None  # noqa: E731
    with served(dashboard_command(sweep_dir), ready) as url:
        (study,) = get(f"{url}/api/studies")["study_summaries"]
        assert study["study_name"] == "search" and study["directions"] == ["maximize"]
        served_trials = get(f"{url}/api/studies/{study['study_id']}")["trials"]
        ours = optuna.load_study(study_name="search", storage=journal(sweep_dir)).trials
        assert [t["params"][0]["param_internal_value"] for t in served_trials] == [
            t.distributions["optim.lr"].to_internal_repr(t.params["optim.lr"]) for t in ours
        ]
        assert [t["values"] for t in served_trials] == [t.values for t in ours]

        search(cifar_root, sweep_dir, trials=3)  # the same command, one trial more: the open page sees it
        for _ in range(300):  # within the dashboard's cache of a study's trials (at most 10 s)
            if len(get(f"{url}/api/studies/{study['study_id']}")["trials"]) == 3:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the dashboard did not show the new trial within 30 s")


def test_make_dashboard_without_a_sweep_dir_says_what_it_needs():
    result = subprocess.run(["make", "-n", "dashboard"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0 and "make dashboard needs DIR=multirun/DATE/TIME" in result.stderr
