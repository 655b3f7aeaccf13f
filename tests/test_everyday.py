"""Every day with the commands: an unknown key answered with the nearest known one, `--help` and a config error
that answer before torch is imported, a console that shows one line where a table would be, and TensorBoard
listing only runs that hold data."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, killed_at, run_cli, tiny_cifar_overrides
from PIL import Image

from benchmarks.bench import CLI_COMMANDS

COMMANDS = ("train", "evaluate", "predict", "tune", "report", "rerun")


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("command", "override", "meant"),
    [
        ("lit_cifar.train", "optim.learning_rate=1e-3", "optim.lr"),  # a name spelled out that the config shortens
        ("lit_cifar.train", "data.batchsize=64", "data.batch_size"),  # a typo in a group's key
        ("lit_cifar.train", "sed=1", "seed"),  # a typo in a top-level key
        ("lit_cifar.train", "lr=1e-3", "optim.lr"),  # a group's key without its group
        ("lit_cifar.train", "data.max_epochs=3", "trainer.max_epochs"),  # a key in the wrong group
        ("lit_cifar.evaluate", "data.batchsize=64", "data.batch_size"),
        ("lit_cifar.predict", "topk=1", "top_k"),
        ("lit_cifar.tune", "tune.max_lrr=1", "tune.max_lr"),
    ],
)
def test_an_unknown_key_is_answered_with_the_nearest_known_key(tmp_path, command, override, meant):
    key = override.split("=")[0]
    result = run_cli(command, override, cwd=tmp_path)

    assert result.returncode == 2
    assert error_lines(result) == [error_lines(result)[0]]  # one line
    line = error_lines(result)[0]
    assert line.startswith("error: ") and key in line and f"did you mean {meant}?" in line, line
    assert f"+{key}" not in line  # Hydra's hint adds a key nothing reads
    assert list(tmp_path.iterdir()) == []  # no folder written


def test_an_unknown_key_like_no_other_names_the_keys_beside_it(tmp_path):
    result = run_cli("lit_cifar.train", "data.bogus=1", cwd=tmp_path)

    assert result.returncode == 2
    line = error_lines(result)[0]
    assert "data.bogus" in line and "did you mean" not in line and "batch_size" in line, line
    assert list(tmp_path.iterdir()) == []


# Runs each command line in turn in one fresh process, as `python -m` would, and prints after each whether torch
# had been imported by then.
IMPORTS_AFTER_EACH = """
import json, runpy, sys
for argv in json.loads(sys.argv[1]):
    sys.argv = list(argv)
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code
    print(json.dumps([argv, code, "torch" in sys.modules]), flush=True)
"""


def test_help_and_a_config_error_of_every_command_answer_before_importing_torch(tmp_path):
    """Each command line of bench figure 4 (`--help` and a config error of every command)."""
    answered_at_once = [command[1:] for command in CLI_COMMANDS.values() if command[0] == "-m"]
    assert {argv[0] for argv in answered_at_once} == {f"lit_cifar.{c}" for c in COMMANDS}
    assert all(["--help"] in [argv[1:] for argv in answered_at_once if argv[0] == f"lit_cifar.{c}"] for c in COMMANDS)
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_AFTER_EACH, json.dumps(answered_at_once)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip

    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    assert [argv for argv, _, _ in answers] == answered_at_once, result.stderr
    assert [(argv, code) for argv, code, _ in answers if code not in (0, 2)] == []
    assert next((argv for argv, _, torch in answers if torch), None) is None  # the first that imported it
    assert [path for path in tmp_path.rglob("*") if not path.is_dir()] == []


def test_the_console_shows_the_model_in_one_line_and_the_log_file_its_layers_and_config(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"]
    result = run_cli("lit_cifar.train", *args)

    assert result.returncode == 0, result.stderr[-3000:]
    console = (result.stdout + result.stderr).splitlines()
    models = [line for line in console if line.startswith("model: ")]
    assert len(models) == 1 and re.fullmatch(r"model: Week11CNN, [\d.]+ [KMB]? ?parameters, [\d.]+ [kM]B", models[0])
    for table in ("Total params", "Trainable params", " Params ", "Non-trainable"):  # the layers' table
        assert table not in result.stdout + result.stderr, table
    assert not [line for line in console if line.startswith(("  model (", "  optim ("))]  # the config's groups
    logged = (run_dir / "train.log").read_text()
    assert "Total params" in logged and "Week11CNN" in logged and "\n  model (week11_cnn)" in logged


def without_warnings_ignored() -> dict[str, str]:
    """The environment of a user's shell: Python's own warning filters, not the tests' PYTHONWARNINGS=ignore."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONWARNINGS"}


def test_predict_on_a_grayscale_image_prints_no_warning(trained_run, tmp_path):
    Image.new("L", (20, 20), color=128).save(tmp_path / "gray.png")
    Image.new("RGB", (40, 30), color=(10, 200, 30)).save(tmp_path / "rgb.png")
    result = subprocess.run(
        [sys.executable, "-m", "lit_cifar.predict", f"ckpt_path={trained_run}", f"images={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=without_warnings_ignored(),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [
        str(tmp_path / n) for n in ("gray.png", "rgb.png")
    ]


def test_a_run_stopped_by_ctrl_c_says_so_in_its_line_alone(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))  # for SignalAtStep
    args = [
        *tiny_cifar_overrides(cifar_root),
        "model=week11_cnn",
        "trainer.max_epochs=2",
        f"hydra.run.dir={tmp_path}/r",
    ]
    result = run_cli("lit_cifar.train", *args, *killed_at(step=2, signum=signal.SIGINT))

    assert result.returncode == 128 + signal.SIGINT
    output = result.stdout + result.stderr
    assert "stopped by SIGINT" in output and "KeyboardInterrupt" not in output, output


HYDRA_PREFIX = re.compile(r"^\[20\d\d-\d\d-\d\d [\d:,]+\]\[")


def test_evaluate_shows_messages_alone_and_no_warning(trained_run, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lit_cifar.evaluate", f"ckpt_path={trained_run}", f"hydra.run.dir={tmp_path / 'ev'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=without_warnings_ignored(),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    console = (result.stdout + result.stderr).splitlines()
    assert [line for line in console if line.startswith("accuracy ")], console
    assert not [line for line in console if HYDRA_PREFIX.match(line) or "Warning" in line], console
    assert HYDRA_PREFIX.match((tmp_path / "ev" / "evaluate.log").read_text())  # the file keeps times and modules


def tensorboard_runs(logdir: Path) -> dict[str, list[str]]:
    """Each run TensorBoard lists under `logdir` (a folder holding event files), with its scalar tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = {}
    for folder in sorted({path.parent for path in logdir.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(folder))
        events.Reload()
        runs[str(folder.relative_to(logdir))] = events.Tags()["scalars"]
    return runs


@pytest.mark.slow
def test_tensorboard_lists_only_runs_that_hold_scalars(cifar_root, tmp_path):
    sweep_dir = tmp_path / "multirun"
    quick = ["model=week11_cnn", "trainer.max_epochs=1", "trainer.limit_train_batches=2"]
    sweep = run_cli(
        "lit_cifar.train", "-m", *tiny_cifar_overrides(cifar_root), *quick, "optim.lr=1e-3,2e-3",
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    evaluation = run_cli("lit_cifar.evaluate", f"ckpt_path='{sweep_dir / 'optim.lr=0.001'}'")
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]

    runs = tensorboard_runs(tmp_path)
    assert "multirun/tensorboard/optim.lr=0.001" in runs and "multirun/tensorboard/optim.lr=0.002" in runs
    assert [run for run in runs if "/evaluate/" in run] != []
    assert {run: tags for run, tags in runs.items() if not tags} == {}
