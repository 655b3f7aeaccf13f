"""`--help` of each command: what it does, examples, the keys changed most; not Hydra's dump of the config."""

import pytest
from conftest import run_cli


@pytest.mark.parametrize("command", ["train", "tune", "evaluate", "predict"])
def test_help_says_what_the_command_does_with_examples_on_one_screen(command):
    result = run_cli(f"lit_cifar.{command}", "--help")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"python -m lit_cifar.{command}")
    assert "Examples" in lines
    assert any(line.strip().startswith(f"python -m lit_cifar.{command} ") for line in lines)
    assert len(lines) <= 40 and "_target_" not in result.stdout and "powered by Hydra" not in result.stdout


def test_train_help_names_the_keys_a_student_changes_most_and_how_to_see_the_whole_config():
    text = run_cli("lit_cifar.train", "--help").stdout

    for key in ("model=", "data.root=", "trainer.max_epochs=", "optim.lr=", "data.batch_size=", "trainer=gpu"):
        assert f"\n  {key}" in text, key
    assert "model: challenge_cnn_bn, " in text  # the options of each group
    assert "--cfg job" in text
