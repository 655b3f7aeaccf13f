"""Every day with the commands: an unknown key answered with the nearest known one, `--help` and a config error
that answer before torch is imported, a console that shows one line where a table would be, and TensorBoard
listing only runs that hold data."""

import pytest
from conftest import run_cli


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
