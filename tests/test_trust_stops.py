"""A user's stop (Ctrl-C's SIGINT, a scheduler's SIGTERM) of every command ends in one line of ours and the status a
shell gives a process the signal killed, keeping what was finished and no half-written file; the lr finder's
settings and a curve that diverges; a full disk."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, file_hashes, run_cli, run_process, tiny_cifar_overrides

# Imported first thing by a command started with this folder on PYTHONPATH: it wraps `module:attribute` (a function, or
# a class's method) to send the command its own signal on the n-th call, so the stop comes at a known point; to its
# whole process group (as Ctrl-C at a terminal does) with `group`.
STOP_HOOK = """
import importlib, os

module, attribute, signum, nth, group = os.environ["LIT_CIFAR_TEST_STOP"].split(":")
*path, name = attribute.split(".")
owner = importlib.import_module(module)
for part in path:
    owner = getattr(owner, part)
original, calls = getattr(owner, name), []


def stopping(*args, **kwargs):
    calls.append(1)
    if len(calls) == int(nth):
        os.killpg(0, int(signum)) if group else os.kill(os.getpid(), int(signum))
    return original(*args, **kwargs)


setattr(owner, name, stopping)
"""
STOPS = [signal.SIGINT, signal.SIGTERM]


@pytest.fixture
def stop_at(tmp_path, monkeypatch):
    """`stop_at("module:function", signum, nth)`: the next fresh process stops itself there."""

    def arm(target: str, signum: int, nth: int = 1, group: bool = False) -> None:
        hook = tmp_path / "stop_hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(STOP_HOOK)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
        monkeypatch.setenv("LIT_CIFAR_TEST_STOP", f"{target}:{int(signum)}:{nth}:{'group' if group else ''}")

    return arm


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_stopped(result: subprocess.CompletedProcess, signum: signal.Signals) -> str:
    """The one line of a stop and the status of a process the signal killed; returns that line."""
    assert result.returncode == 128 + signum, result.stderr[-3000:]
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"error: stopped by {signum.name}; "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Exception in thread" not in result.stderr, result.stderr[-3000:]
    return errors[0]


def tune_args(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*tiny_cifar_overrides(root), "model=week11_cnn", "tune.steps=20", f"hydra.run.dir={run_dir}", *extra]


# --- the lr finder's settings and curve


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("tune.max_lr=inf", "tune.max_lr=inf must be a positive, finite number, e.g. tune.max_lr=1"),
        ("tune.min_lr=nan", "tune.min_lr=nan must be a positive, finite number, e.g. tune.min_lr=1e-6"),
        ("tune.min_lr=-1e-6", "tune.min_lr=-1e-06 must be a positive, finite number"),
        ("tune.steps=100.5", "tune.steps=100.5 must be a whole number of at least 20"),
        ("tune.steps=true", "tune.steps=True must be a whole number of at least 20"),
        ("tune.batch_size=yes", "tune.batch_size='yes' (a string) must be true or false"),
        ("tune.max_batch_doublings=0", "tune.max_batch_doublings=0 must be a whole number from 1 to 25"),
        ("tune.max_batch_doublings=1.5", "tune.max_batch_doublings=1.5 must be a whole number from 1 to 25"),
    ],
)
def test_the_lr_finders_settings_are_checked_in_one_line_before_anything_runs(tmp_path, cifar_root, setting, message):
    run_dir = tmp_path / "tune"
    result = run_cli("lit_cifar.tune", *tune_args(cifar_root, run_dir, setting))
    assert result.returncode == 2, result.stderr[-3000:]
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr and not run_dir.exists()


def test_a_curve_that_diverges_before_the_finder_can_judge_it_is_refused_saying_where(tmp_path, cifar_root):
    """With tune.max_lr=1e30 the lr grows 4,000 times a step: the loss diverges after the third, where Lightning's
    finder stops, and the smallest lr it tried was suggested."""
    run_dir = tmp_path / "tune"
    result = run_cli("lit_cifar.tune", *tune_args(cifar_root, run_dir, "tune.max_lr=1e30"))
    assert result.returncode == 2, result.stderr[-3000:]
    (error,) = error_lines(result.stderr)
    assert "the loss diverged" in error and "lower tune.max_lr" in error, error
    assert "optim.lr=" not in result.stdout and not run_dir.exists()


def test_the_suggestion_comes_from_the_curve_before_it_diverged():
    from lit_cifar.tune import before_divergence

    losses = [2.3 - 0.01 * i for i in range(20)]
    assert before_divergence([*losses, float("nan"), float("nan")], steps=22) == 20
    assert before_divergence([*losses, float("inf")], steps=30) == 20  # the finder stopped there
    assert before_divergence([*losses, 9.2], steps=30) == 20  # 4 times the lowest loss: the finder stopped there
    assert before_divergence(losses, steps=20) == 20


# --- every command stopped by a signal


@pytest.mark.parametrize("signum", STOPS)
def test_a_stopped_lr_finder_ends_in_one_line_and_leaves_no_folder(tmp_path, cifar_root, stop_at, signum):
    stop_at("lit_cifar.training.module:LitClassifier.training_step", signum, nth=3)
    run_dir = tmp_path / "tune"
    assert_stopped(run_process("lit_cifar.tune", *tune_args(cifar_root, run_dir)), signum)
    assert not run_dir.exists()


@pytest.mark.parametrize("signum", STOPS)
def test_a_stopped_evaluation_ends_in_one_line_and_leaves_no_half_evaluation(trained_run, tmp_path, stop_at, signum):
    stop_at("lit_cifar.callbacks.figures:confusion_figure", signum)  # evaluation.json is written, the figure is not
    before = file_hashes(trained_run)
    out = tmp_path / "evaluation"
    args = [f"ckpt_path={trained_run}", f"hydra.run.dir={out}"]
    line = assert_stopped(run_process("lit_cifar.evaluate", *args, cwd=trained_run.parent), signum)
    assert "run the same command again" in line
    assert not out.exists() and file_hashes(trained_run) == before


@pytest.mark.parametrize("signum", STOPS)
def test_a_stopped_prediction_ends_in_one_line(trained_run, tmp_path, stop_at, signum):
    stop_at("lit_cifar.training.restore:load_datamodule", signum)
    image = tmp_path / "image.png"
    shutil.copy(REPO / "docs" / "sweep_plot.png", image)
    result = run_process("lit_cifar.predict", f"ckpt_path={trained_run}", f"images={image}", cwd=trained_run.parent)
    assert_stopped(result, signum)
    assert result.stdout == ""


@pytest.mark.parametrize("signum", STOPS)
def test_a_stopped_report_is_written_whole_before_its_line(trained_run, tmp_path, stop_at, signum):
    """Stopped while it draws results.png (results.md and .csv written): the three files are finished."""
    stop_at("lit_cifar.reporting.plots:plot", signum)
    out = tmp_path / "report"
    assert_stopped(run_process("lit_cifar.report", str(trained_run), "--out", str(out)), signum)
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG" and str(trained_run) in (out / "results.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.md", "results.png"]


@pytest.mark.parametrize("signum", STOPS)
def test_a_stopped_rerun_ends_in_one_line(tmp_path, stop_at, signum):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "multirun.yaml").write_text("{}\n")
    stop_at("lit_cifar.run.folders:SweepRecord.load", signum)  # reading the sweep's record
    assert_stopped(run_process("lit_cifar.rerun", str(sweep_dir)), signum)


@pytest.mark.parametrize("signum", STOPS)
def test_a_training_stopped_before_it_fits_ends_in_one_line_and_leaves_no_folder(cifar_root, tmp_path, stop_at, signum):
    stop_at("lit_cifar.training.build:build", signum)
    run_dir = tmp_path / "run"
    args = [*tiny_cifar_overrides(cifar_root), "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"]
    line = assert_stopped(run_process("lit_cifar.train", *args), signum)
    assert "run the same command again" in line and not run_dir.exists()


def test_a_sweep_stopped_while_it_writes_its_report_finishes_it_and_says_so(cifar_root, tmp_path, stop_at):
    stop_at("lit_cifar.reporting.plots:plot", signal.SIGTERM)
    sweep_dir = tmp_path / "sweep"
    args = [*tiny_cifar_overrides(cifar_root), "seed=1,2", "trainer.fast_dev_run=true", f"hydra.sweep.dir={sweep_dir}"]
    result = run_process("lit_cifar.train", "-m", *args)
    line = assert_stopped(result, signal.SIGTERM)
    assert f"its results table are written in {sweep_dir}" in line
    assert (sweep_dir / "results.png").read_bytes()[:4] == b"\x89PNG" and (sweep_dir / "results.md").is_file()


@pytest.mark.slow
def test_ctrl_c_in_a_parallel_sweep_is_told_once_and_starts_no_other_job(cifar_root, tmp_path, stop_at):
    """Ctrl-C reaches the sweep's process and its job's worker; the job queued behind never started."""
    stop_at("lit_cifar.training.module:LitClassifier.training_step", signal.SIGINT, nth=3, group=True)
    sweep_dir = tmp_path / "sweep"
    args = [*tiny_cifar_overrides(cifar_root), "seed=1,2", "trainer.max_epochs=2", "hydra/launcher=parallel",
            "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    command = [sys.executable, "-m", "lit_cifar.train", "-m", *args]
    result = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip  (a group of its own: the stop reaches no process of the tests)
    assert_stopped(result, signal.SIGINT)
    assert (sweep_dir / "seed=1").is_dir() and not (sweep_dir / "seed=2").exists()


# --- a full disk


def in_a_small_filesystem(disk: Path, kib: int, module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m module args` with `disk` a tmpfs of `kib` KiB (mounted in a mount namespace of its own, which an
    unprivileged user gets as root of a user namespace); its stdout ends with the files it left there."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare to mount a small filesystem")
    script = 'mount -t tmpfs -o size="$1"k tmpfs "$2" || exit 99; shift 2; "$@"; code=$?; find "$DISK" -type f; '
    script += "exit $code"
    disk.mkdir()
    command = ["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", str(kib), str(disk)]
    result = subprocess.run(
        [*command, sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "DISK": str(disk)},
    )  # fmt: skip
    if result.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    return result


@pytest.mark.slow
@pytest.mark.parametrize("kib", [120, 400, 600])
def test_a_full_disk_ends_a_training_in_one_line_and_leaves_no_half_written_file(cifar_root, tmp_path, kib):
    """TensorBoard's writer thread, a checkpoint and the record meet the full disk in another order at each size."""
    disk = tmp_path / "disk"
    args = [*tiny_cifar_overrides(cifar_root), "trainer.max_epochs=3", f"hydra.run.dir={disk / 'run'}"]
    result = in_a_small_filesystem(disk, kib, "lit_cifar.train", *args)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"error: no space left on the device holding {disk}/"), (
        result.stderr[-3000:]
    )
    assert "Traceback" not in result.stderr and "Exception in thread" not in result.stderr, result.stderr[-3000:]
    left = [Path(line) for line in result.stdout.splitlines() if line.startswith(str(disk))]
    assert not [path for path in left if path.name.endswith(".partial")], left
    checkpoints = [path for path in left if path.suffix == ".ckpt"]
    assert checkpoints or not left, left  # a folder without a finished epoch is not kept


@pytest.mark.slow
def test_a_full_disk_in_a_sweep_names_the_sweeps_folder_key(cifar_root, tmp_path):
    disk = tmp_path / "disk"
    args = ["-m", *tiny_cifar_overrides(cifar_root), "trainer.max_epochs=3", "optim.lr=1e-3,2e-3"]
    result = in_a_small_filesystem(disk, 400, "lit_cifar.train", *args, f"hydra.sweep.dir={disk / 'sweep'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    # the jobs' reasons, in the table it prints (the small filesystem is gone with its namespace)
    assert "(hydra.sweep.dir=…)" in result.stdout and "hydra.run.dir" not in result.stdout, result.stdout[-3000:]
