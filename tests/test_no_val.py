"""`data.val_size=0`: no validation split. The run trains on every training image, writes last.ckpt each epoch,
tests those last weights and reports test accuracy; what needs validation is refused before anything is written."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import WEEK11_HPARAMS, run_cli, tiny_cifar_overrides
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from lit_cifar.callbacks.hparams import HParamsSummary
from lit_cifar.callbacks.images import ImageSummary
from lit_cifar.data.make_chars import generate
from lit_cifar.reporting import table as report
from lit_cifar.reporting.settings import settings
from lit_cifar.run.errors import UserError
from lit_cifar.run.folders import SweepRecord
from lit_cifar.run.validate import check_needs_validation, check_values

NO_VAL = ["data.val_size=0", "model=week11_cnn", "trainer.max_epochs=2"]
LIGHTNING_WARNINGS = ("could not find the monitored key", "Total length of", "across ranks is zero")


def no_val_config(**changes) -> dict:
    config = {
        "data": {"val_size": 0},
        "optimized_metric": "val/acc_best",
        "callbacks": {
            "model_checkpoint": {"_target_": "lit_cifar.callbacks.checkpoint.ResumableCheckpoint", "monitor": "val/acc"}
        },
    }
    return OmegaConf.merge(config, changes)


ASHA = {"pruner": {"_target_": "optuna.pruners.SuccessiveHalvingPruner"}}
NO_PRUNER = {"pruner": {"_target_": "optuna.pruners.NopPruner"}}


def test_val_size_0_is_a_value_and_negative_is_not():
    check_values(OmegaConf.create({"data": {"val_size": 0}}))
    with pytest.raises(UserError, match=r"data.val_size=-1 must be .*, or 0: no validation split"):
        check_values(OmegaConf.create({"data": {"val_size": -1}}))


def test_without_validation_the_checkpoint_callback_and_a_grid_pass():
    check_needs_validation(no_val_config(), search=None)
    check_needs_validation(no_val_config(optimized_metric="test/acc"), search=OmegaConf.create(NO_PRUNER))


@pytest.mark.parametrize(
    ("config", "search", "message"),
    [
        (
            {"callbacks": {"early_stopping": {"_target_": "x.EarlyStopping", "monitor": "val/acc"}}},
            None,
            "callbacks.early_stopping monitors val/acc, which data.val_size=0 never computes",
        ),
        ({}, ASHA, "the search's pruner (SuccessiveHalvingPruner) judges trials by validation accuracy"),
        ({}, NO_PRUNER, "optimized_metric=val/acc_best is a validation metric"),
    ],
)
def test_what_needs_validation_is_refused_naming_both_keys(config, search, message):
    with pytest.raises(UserError) as refused:
        check_needs_validation(no_val_config(**config), search=OmegaConf.create(search) if search else None)
    assert message in str(refused.value) and "data.val_size=" in str(refused.value)
    check_needs_validation(OmegaConf.merge(no_val_config(**config), {"data": {"val_size": 20}}), search=None)


def hparams_of(log_dir: Path) -> tuple[list[str], list[str]]:
    """The HParams a run recorded (its session's columns) and the metric columns of its experiment config."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    config = EventAccumulator(str(next(log_dir.glob("*.hparams_config"))))
    config.Reload()
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        config.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    return list(start.session_start_info.hparams), [m.name.tag for m in experiment.metric_infos]


def train(cifar_root: Path, run_dir: Path, *args: str):
    return run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), *NO_VAL, *args, f"hydra.run.dir={run_dir}")


@pytest.mark.slow
def test_a_run_without_validation_tests_its_last_weights_resumes_and_refuses_a_split(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    result = train(cifar_root, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [w for w in LIGHTNING_WARNINGS if w in result.stderr + result.stdout], result.stderr
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["tested_checkpoint"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert record["best_checkpoint"] == ""
    assert 0 <= record["metrics"]["test/acc"] <= 1
    assert not [name for name in record["metrics"] if name.startswith("val/")]
    epochs = [line for line in (run_dir / "train.log").read_text().splitlines() if " - epoch " in line]
    assert len(epochs) == 2 and all("train loss" in line and "val" not in line for line in epochs)
    assert "test/acc=" in result.stderr + result.stdout and "val/acc_best=nan" not in result.stderr
    columns, metrics = hparams_of(run_dir / "tensorboard")
    assert sorted(columns) == sorted([*WEEK11_HPARAMS, "run", "status", "epochs"])
    assert metrics == ["test/acc", "time/fit_s"]  # the metric it is ranked by, as in the tables
    (row,) = report.report([run_dir], out=None)
    assert row["status"] == "ok" and row["val/acc_best"] is None and row["test/acc"] == record["metrics"]["test/acc"]

    evaluated = run_cli(
        "lit_cifar.evaluate", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp_path / 'ev'}"
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    evaluation = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(record["metrics"]["test/acc"])  # last.ckpt is what was tested

    again = train(cifar_root, run_dir, "ckpt_path=last")
    assert again.returncode == 0 and "ok already, left as it is" in again.stderr
    longer = train(cifar_root, run_dir, "ckpt_path=last", "trainer.max_epochs=3")
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["test/acc"] >= 0
    assert len([line for line in (run_dir / "train.log").read_text().splitlines() if " - epoch 3/3" in line]) == 1

    split = train(cifar_root, run_dir, "ckpt_path=last", "trainer.max_epochs=3", "data.val_size=20")
    errors = [line for line in split.stderr.splitlines() if line.startswith("error: ")]
    assert split.returncode != 0 and len(errors) == 1 and "data.val_size: 0 -> 20" in errors[0], split.stderr


@pytest.mark.slow
def test_characters_train_without_validation(tmp_path):
    root = tmp_path / "chars"
    generate(root, {"train": 3, "test": 1}, symbols="0Aa", font_dirs=[])
    run_dir = tmp_path / "run"
    data = ["data=chars", f"data.root={root}", "data.image_size=32", "data.batch_size=4", "data.num_workers=0"]
    result = run_cli(
        "lit_cifar.train", *data, *NO_VAL, "trainer=cpu", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [w for w in LIGHTNING_WARNINGS if w in result.stderr + result.stdout], result.stderr
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["tested_checkpoint"].endswith("last.ckpt") and "test/acc" in record["metrics"]


@pytest.mark.slow
def test_a_grid_without_validation_ranks_by_test_accuracy_and_says_so(cifar_root, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "lit_cifar.train",
        "-m",
        *tiny_cifar_overrides(cifar_root),
        *NO_VAL,
        "trainer.max_epochs=1",
        "optim.lr=1e-3,3e-3",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = (sweep_dir / "results.md").read_text()
    assert "ranked by test/acc" in table and "selects on the test set" in table
    rows = report.collect(SweepRecord.load(sweep_dir))[1]
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert rows[0]["test/acc"] >= rows[1]["test/acc"]


def test_runs_without_validation_rank_by_test_accuracy_and_the_table_says_so():
    rows = [  # `validation`: whether the run's resolved config had a validation split (data.val_size > 0)
        {"status": "ok", "val/acc_best": 0.9, "test/acc": 0.2, "dir": "a", "validation": True},
        {"status": "ok", "val/acc_best": None, "test/acc": 0.5, "dir": "b", "validation": False},
        {"status": "ok", "val/acc_best": None, "test/acc": 0.7, "dir": "d", "validation": False},
        {"status": "failed", "val/acc_best": None, "test/acc": None, "dir": "c", "validation": None},
    ]
    without = rows[1:]
    assert [row["dir"] for row in report.ranked(without, report.ranked_by(without))] == ["d", "b", "c"]
    validated = [rows[0], rows[3]]
    assert [row["dir"] for row in report.ranked(validated, report.ranked_by(validated))] == ["a", "c"]
    assert report.ranked_by(rows) == "val/acc_best"  # not one run without it: the table refuses such a mix
    for row in rows:
        row |= {"overrides": {}, "code": None, "images": {}, "job": row["dir"]}
    found = settings(rows, [], "test/acc")
    assert report.RANKED_BY_TEST in report.render([("Runs", [])], [], rows, ["dir", "test/acc"], found, "test/acc")


@pytest.mark.slow
def test_a_search_without_validation_or_pruner_optimizes_test_accuracy(cifar_root, tmp_path):
    sweep_dir = tmp_path / "search"
    search = ["hydra/sweeper=optuna", "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=2"]
    result = run_cli(
        "lit_cifar.train",
        "-m",
        *tiny_cifar_overrides(cifar_root),
        *NO_VAL,
        "trainer.max_epochs=1",
        *search,
        "optimized_metric=test/acc",
        "optim.lr=interval(1e-4,1e-2)",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ranked by test/acc" in (sweep_dir / "results.md").read_text()
    assert (sweep_dir / "search_history.png").is_file()


def test_test_images_drawn_from_a_padded_last_batch(tmp_path):
    """The batched pipeline pads the last test batch's images (not its labels); test_step returns a logit per label."""
    trainer = SimpleNamespace(datamodule=SimpleNamespace(class_names=["a", "b"]))
    summary = ImageSummary(mistakes=4)
    summary.on_test_epoch_start(trainer, None)
    logits = torch.tensor([[0.0, 2.0], [2.0, 0.0], [0.0, 1.0]])
    summary.on_test_batch_end(trainer, None, logits, (torch.zeros(8, 3, 4, 4), torch.tensor([0, 0, 1])), 0)
    assert summary._counts.tolist() == [[1, 1], [0, 1]] and len(summary._worst[1]) == 1


def test_a_run_failing_in_its_test_ends_its_hparams_session(tmp_path):
    """Lightning closes the TensorBoard writer when fitting ends; an error in the test before any scalar is
    logged must still mark the HParams session failed, not raise from the error handler."""
    logger = TensorBoardLogger(str(tmp_path))
    logger.experiment.add_scalar("x", 1.0)
    logger.finalize("success")
    trainer = SimpleNamespace(is_global_zero=True, loggers=[logger], global_step=3, current_epoch=1)
    HParamsSummary(numbers={}, texts={}).on_exception(trainer, None, RuntimeError("in the test"))
    accumulator = EventAccumulator(logger.log_dir)  # its event files in turn
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"]).session_end_info
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert end.status == api_pb2.STATUS_FAILURE and start.hparams["status"].string_value == "failed"
    assert "time/fit_s" in accumulator.Tags()["scalars"]


@pytest.mark.slow
def test_a_grid_with_early_stopping_and_no_validation_is_refused_before_its_sweep_dir_exists(cifar_root, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [*tiny_cifar_overrides(cifar_root), "data.val_size=0", "callbacks=early_stopping", "optim.lr=1e-3,2e-3"]
    result = run_cli("lit_cifar.train", "-m", *args, f"hydra.sweep.dir={sweep_dir}")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "callbacks.early_stopping monitors val/acc" in errors[0]
    assert not sweep_dir.exists()
