"""The commands the project prints (the resume line after a stop, `train it again with`, a sweep's re-run command
and the rerun hint) run exactly as printed in a shell whose PATH holds no venv: the user who never activated
`.venv` pastes the line and it works."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, killed_at, run_cli, tiny_cifar_overrides

from lit_cifar.run.commands import command, python

TESTS = Path(__file__).parent


def without_venv() -> dict[str, str]:
    """The environment of a shell where the venv was never activated: its bin folder off PATH, no VIRTUAL_ENV."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and p != venv_bin)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PATH": path, "PYTHONWARNINGS": "ignore"}


def run_as_printed(line: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(line, shell=True, cwd=cwd, env=without_venv(), capture_output=True, text=True, timeout=600)


def printed_after(output: str, marker: str) -> str:
    """The command on the line after `marker` (or within backticks there, as results.md quotes it)."""
    line = output.split(marker, 1)[1].splitlines()[0].strip()
    return line.split("`")[1] if line.startswith("`") else line


def test_the_python_is_spelled_out_from_the_repo_root_and_absolute_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert python() == os.path.relpath(sys.executable, REPO)  # `.venv/bin/python`, as the README writes it
    assert command("train", "a=1 2") == f"{python()} -m lit_cifar.train 'a=1 2'"
    monkeypatch.chdir(tmp_path)
    assert python() == sys.executable


@pytest.mark.slow
def test_the_resume_line_after_a_stop_runs_as_printed_from_the_repo_root(tmp_path, cifar_root, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    run_dir = tmp_path / "run"
    kill = killed_at(7, signal.SIGTERM, once=tmp_path / "killed-once")  # in the second epoch
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"]
    stopped = run_cli("lit_cifar.train", *args, *kill)  # in the repo root, where a user types the README's lines
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    line = printed_after(stopped.stderr, "go on from its last finished epoch with: ")
    assert line.startswith(".venv/bin/python -m lit_cifar.train ")

    resumed = run_as_printed(line, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.slow
def test_train_it_again_and_the_sweeps_commands_run_as_printed(tmp_path, cifar_root):
    """From a folder outside the repo: the lines name the venv's python by its absolute path."""
    sweep = tmp_path / "sweep"
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=1", "optim.lr=1e-3,2e-3"]
    grid = run_cli("lit_cifar.train", "-m", *args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert grid.returncode == 0, grid.stderr[-3000:]
    results = (sweep / "results.md").read_text()

    again = run_as_printed(printed_after(results, "train it again with:\n"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((tmp_path / "outputs").glob("*/*/metrics.json"))) == 1  # a new single run, in ./outputs

    rerun = run_as_printed(printed_after(results, "command: "), cwd=tmp_path)  # every job finished: left as it is
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "2 of 2 jobs finished already" in rerun.stdout + rerun.stderr

    # a sweep folder given as a single run's folder: the error names rerun's command, which runs as printed
    refused = run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), f"hydra.run.dir={sweep}", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr[-3000:]
    hint = printed_after(refused.stderr, "re-run the sweep with ")
    assert hint.startswith(f"{sys.executable} -m lit_cifar.rerun ")
    replayed = run_as_printed(hint, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert "2 of 2 jobs finished already" in replayed.stdout + replayed.stderr
