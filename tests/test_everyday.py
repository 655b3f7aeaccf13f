"""Every day with the commands: an unknown key answered with the nearest known one, `--help` and a config error
that answer before torch is imported, a console that shows one line where a table would be, and TensorBoard
listing only runs that hold data."""

import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli

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
