import json
import math
from pathlib import Path

import pytest
from conftest import MODELS, run_cli, tiny_cifar_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_chars import chars_overrides, chars_root  # noqa: F401 (a fixture)

from lit_cifar.run.commands import python

STEPS = ["tune.steps=20"]


def tune(run_dir: Path, *args: str):
    return run_cli("lit_cifar.tune", *STEPS, *args, f"hydra.run.dir={run_dir}")


def test_the_lr_finder_prints_the_override_and_writes_its_plot(tmp_path, cifar_root):
    run_dir = tmp_path / "tune"
    result = tune(run_dir, *tiny_cifar_overrides(cifar_root), "model=week11_cnn")
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((run_dir / "lr_find.json").read_text())
    lr = found["found"]["optim.lr"]
    assert 1e-6 <= lr <= 1.0 and len(found["lr"]) == len(found["loss"]) > 10
    assert f"optim.lr={lr}" in result.stdout
    train = found["command"]
    assert train.startswith(f"{python()} -m lit_cifar.train ") and train.endswith(f"model=week11_cnn optim.lr={lr}")
    assert "tune.steps" not in train and train in result.stdout
    assert (run_dir / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert events.Tags()["images"] == ["tune/lr_find"]
    assert not list(run_dir.glob(".lr_find_*.ckpt"))  # Lightning's scratch checkpoint is gone


def test_the_batch_size_finder_runs_first_and_is_printed_with_the_lr(tmp_path, cifar_root):
    run_dir = tmp_path / "tune"
    result = tune(run_dir, *tiny_cifar_overrides(cifar_root), "model=week11_cnn", "tune.batch_size=true",
                  "tune.max_batch_doublings=2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((run_dir / "lr_find.json").read_text())["found"]
    assert found["data.batch_size"] in (16, 32, 64)  # from data.batch_size=16, doubled at most twice
    assert f"data.batch_size={found['data.batch_size']} optim.lr={found['optim.lr']}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tune.min_lr=1.0", "tune.max_lr=0.1"], "tune.min_lr=1.0, tune.max_lr=0.1: need 0 < min_lr < max_lr"),
        (["tune.steps=5"], "tune.steps=5 must be a whole number of at least 20"),
    ],
)
def test_bad_finder_settings_are_refused_in_one_line_leaving_no_folder(tmp_path, cifar_root, args, message):
    result = run_cli("lit_cifar.tune", *tiny_cifar_overrides(cifar_root), *args, cwd=tmp_path)  # default run dir
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
    left = [p.relative_to(tmp_path).as_posix() for p in (tmp_path / "outputs").rglob("*")]
    assert left == ["outputs/tune"]  # not its own folder, nor one of lit_cifar.train's


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_the_lr_finder_works_for_every_model_on_cifar(tmp_path, cifar_root, model):
    result = tune(tmp_path / "tune", *tiny_cifar_overrides(cifar_root), f"model={model}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "optim.lr=" in result.stdout


@pytest.mark.slow
def test_the_lr_finder_works_on_characters_with_sgd_and_onecycle(tmp_path, chars_root):  # noqa: F811
    result = tune(
        tmp_path / "tune", *chars_overrides(chars_root), "model=resnet_lite", "optim=sgd", "scheduler=onecycle"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "optim.lr=" in result.stdout


def test_the_lr_finder_curve_starts_at_an_untrained_nets_loss(tmp_path, cifar_root):
    """An untrained 10-class net's loss is about ln 10 = 2.30 at the smallest lr; Lightning's smoothing had it 1.18."""
    run_dir = tmp_path / "tune"
    result = tune(run_dir, *tiny_cifar_overrides(cifar_root), "model=week11_cnn")
    assert result.returncode == 0, result.stderr[-3000:]
    losses = json.loads((run_dir / "lr_find.json").read_text())["loss"]
    assert losses[0] == pytest.approx(math.log(10), rel=0.15)


@pytest.mark.parametrize("start_step", [0, 7])
def test_debiasing_gives_back_a_constant_loss_from_lightnings_recorded_curve(start_step):
    from lit_cifar.tune import LR_FINDER_BETA, debiased  # here: run_cli runs lit_cifar.tune as __main__

    beta, loss, average, recorded = LR_FINDER_BETA, 2.3, 0.0, []
    for n in range(1, 40):  # what Lightning 2.6 records: the global step is read after it counted the batch
        average = beta * average + (1 - beta) * loss
        recorded.append(average / (1 - beta ** (start_step + n + 1)))
    assert debiased(recorded, start_step) == pytest.approx([loss] * len(recorded))


def test_the_suggestion_is_the_steepest_fall_per_decade_not_per_unit_of_lr():
    from lit_cifar.tune import steepest_descent

    lrs = [1e-6 * 10 ** (i / 10) for i in range(60)]  # six decades
    losses = [2.3 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 4)) for lr in lrs]  # falls fastest at lr 1e-3
    losses[12] -= 0.01  # a wiggle of noise at a small lr
    assert lrs[steepest_descent(lrs, losses)] == pytest.approx(1e-3, rel=0.3)
    assert steepest_descent(lrs, [math.nan] * len(lrs)) is None
    early = [2.3, 2.2, 1.9, 1.6, 1.5, *(1.5 + n for n in range(1, 16))]  # 20 steps, lowest at the fifth
    assert steepest_descent(lrs[:20], early) in (2, 3)
    assert steepest_descent(lrs[:20], sorted(early)) == 0  # rising from the start: the lowest point's lr
    blown_up = [*losses[:45], 4.0, *(4.0 - 0.2 * n for n in range(1, 15))]  # a spike at lr 3e-2, then a drift down
    assert lrs[steepest_descent(lrs, blown_up)] == pytest.approx(1e-3, rel=0.3)


def test_a_net_that_does_not_fit_the_data_is_refused_in_one_line_as_training_refuses_it(tmp_path, cifar_root):
    """tune builds the data and the module as train does, with the same check of the net against the data."""
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "model.num_classes=7"]
    trained = run_cli("lit_cifar.train", *args, "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path / 'run'}")
    tuned = tune(tmp_path / "tune", *args)
    message = "model Week11CNN gives (7,) outputs per image, not data.num_classes=10"
    for result in (trained, tuned):
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
        assert message in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "tune").exists()
