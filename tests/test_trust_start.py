"""A start is checked before anything is written, and what it starts from is what it trains: a resume is refused
when its checkpoint was trained with other settings than the run's (however its record reads), a sweep folder
holds one sweep, every config value (callbacks' and loggers' keys included) is typed and in range before torch
loads, a folder that holds no run or holds a sweep is named as such, and a sweep job's bad value is one line."""

import json
from pathlib import Path

import pytest
import torch
from conftest import file_hashes, run_cli, run_process, tiny_cifar_overrides
from omegaconf import OmegaConf

from lit_cifar.run.commands import python

QUICK = ["model=week11_cnn", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "seed=7"]


def train(root: Path, *args: str):
    return run_cli("lit_cifar.train", *tiny_cifar_overrides(root), *QUICK, *args)


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def assert_one_line(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert len(errors(result)) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors(result)[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """The data and the folder of one finished epoch of week11_cnn, for the tests to copy."""
    from conftest import write_cifar

    root = write_cifar(tmp_path_factory.mktemp("run") / "data")
    run_dir = root.parent / "run"
    assert train(root, f"hydra.run.dir={run_dir}").returncode == 0
    return root, run_dir


@pytest.fixture(scope="module")
def grid_dir(finished_run) -> Path:
    """A finished grid of two smoke jobs, which the tests must leave as it is."""
    root, run_dir = finished_run
    sweep_dir = run_dir.parent / "grid"
    result = run_cli("lit_cifar.train", "-m", *tiny_cifar_overrides(root), *QUICK, "optim.lr=1e-3,2e-3",
                     "trainer.fast_dev_run=true", f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir


def copied(run_dir: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run_dir, to))


# 1. A resume trains what its checkpoint was trained with, or is refused naming the key.


def test_a_record_edited_to_other_settings_does_not_resume_on_the_checkpoints(finished_run, tmp_path):
    root, original = finished_run
    run_dir = copied(original, tmp_path / "run")
    record = run_dir / ".hydra" / "resolved.yaml"
    record.write_text(record.read_text().replace("lr: 0.001", "lr: 0.004"))  # every lr the record holds
    before = file_hashes(run_dir)
    result = train(root, "optim.lr=0.004", "trainer.max_epochs=2", "ckpt_path=last", f"hydra.run.dir={run_dir}")
    assert_one_line(result, "optim.lr: 0.001 -> 0.004", f"{run_dir / 'checkpoints'}")
    assert file_hashes(run_dir) == before


def test_a_checkpoints_config_is_compared_as_data_never_built(finished_run, tmp_path):
    root, original = finished_run
    run_dir = copied(original, tmp_path / "run")
    marker = tmp_path / "ran"
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        ckpt = torch.load(path, weights_only=True)
        ckpt["run_config"]["callbacks"]["payload"] = {"_target_": "pathlib.Path.touch", "self": str(marker)}
        torch.save(ckpt, path)
    before = file_hashes(run_dir)
    result = train(root, "trainer.max_epochs=2", "ckpt_path=last", f"hydra.run.dir={run_dir}")
    assert_one_line(result, "callbacks.payload._target_: pathlib.Path.touch -> (unset)")
    assert not marker.exists() and file_hashes(run_dir) == before


def test_a_sweep_job_goes_on_only_from_a_checkpoint_of_its_own_settings(finished_run, tmp_path):
    root, _ = finished_run
    sweep_dir = tmp_path / "sweep"
    args = ["-m", *tiny_cifar_overrides(root), *QUICK, "optim.lr=1e-3,2e-3", f"hydra.sweep.dir={sweep_dir}"]
    assert run_cli("lit_cifar.train", *args).returncode == 0
    job = sweep_dir / "optim.lr=0.002"
    (job / "metrics.json").unlink()  # as a kill leaves it: the re-run sweep goes on with this job
    for path in (job / "checkpoints").glob("*.ckpt"):  # trained with another lr than the job's record says
        ckpt = torch.load(path, weights_only=True)
        ckpt["run_config"]["optim"]["lr"] = 0.004
        torch.save(ckpt, path)
    before = file_hashes(sweep_dir)
    assert_one_line(run_cli("lit_cifar.train", *args), f"{job / 'checkpoints'}", "optim.lr: 0.004 -> 0.002")
    assert file_hashes(sweep_dir) == before


# 2. One sweep per sweep folder.


def search_args(root: Path, sweep_dir: Path, *args: str) -> list[str]:
    space = ["hydra/sweeper=optuna", "hydra/sweeper/pruner=none", "optim.lr=interval(1e-4,1e-2)"]
    return ["-m", *tiny_cifar_overrides(root), *QUICK, *space, "hydra.sweeper.n_trials=1", *args,
            f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip


def test_a_search_into_a_grids_folder_is_refused_untouched(finished_run, grid_dir):
    root, _ = finished_run
    before = file_hashes(grid_dir)
    result = run_cli("lit_cifar.train", *search_args(root, grid_dir, "trainer.fast_dev_run=true"))
    assert_one_line(result, f"{grid_dir} holds a grid sweep", "an Optuna search", "pick a new hydra.sweep.dir")
    assert file_hashes(grid_dir) == before


def test_a_finished_search_takes_no_grid_and_no_other_search(finished_run, tmp_path):
    root, _ = finished_run
    sweep_dir = tmp_path / "search"
    first = run_cli("lit_cifar.train", *search_args(root, sweep_dir))
    assert first.returncode == 0, first.stderr[-3000:]
    before = file_hashes(sweep_dir)

    grid = run_cli("lit_cifar.train", "-m", *tiny_cifar_overrides(root), *QUICK, "optim.lr=1e-3,2e-3",
                   f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    assert_one_line(grid, f"{sweep_dir} holds an Optuna search", "a grid sweep")
    for change, named in [
        (["hydra/sweeper/sampler=random"], "hydra.sweeper.sampler._target_: optuna.samplers.TPESampler -> "),
        (["hydra/sweeper/pruner=median"], "hydra.sweeper.pruner._target_: optuna.pruners.NopPruner -> "),
        (["hydra.sweeper.study_name=other"], "hydra.sweeper.study_name: search -> other"),
        (["optimized_metric=val/loss"], "optimized_metric: val/acc_best -> val/loss"),
        (["hydra.sweeper.monitor=val/loss", "optimized_metric=val/loss"], "hydra.sweeper.monitor: None -> val/loss"),
        (["optim.lr=interval(1e-3,1e-1)"], "optim.lr: "),
    ]:
        refused = run_cli("lit_cifar.train", *search_args(root, sweep_dir, *change))
        assert_one_line(refused, f"{sweep_dir} holds a search of other settings", named)
        assert file_hashes(sweep_dir) == before, change


# 3. Every value a config accepts is checked before torch loads.

BAD_VALUES = [
    (["callbacks=lookahead", "callbacks.lookahead.power=abc"], "callbacks.lookahead.power=abc must be a number ≥ 0"),
    (["experiment=fast94", "callbacks.patch_whitening.num_images=0"], "callbacks.patch_whitening.num_images=0 must"),
    (["experiment=fast94", "callbacks.patch_whitening.num_images=abc"], "callbacks.patch_whitening.num_images="),
    (["experiment=fast94", "callbacks.patch_whitening.bias_epochs=-1"], "callbacks.patch_whitening.bias_epochs=-1"),
    (["callbacks=lookahead", "callbacks.lookahead.every_n_steps=0"], "callbacks.lookahead.every_n_steps=0 must"),
    (["callbacks=early_stopping", "callbacks.early_stopping.patience=-1"], "callbacks.early_stopping.patience=-1"),
    (["callbacks=early_stopping", "callbacks.early_stopping.mode=up"], "callbacks.early_stopping.mode=up must"),
    (["callbacks=ema", "callbacks.weight_averaging.decay=1.5"], "callbacks.weight_averaging.decay=1.5 must"),
    (["callbacks.run_time.warn_above_min=soon"], "callbacks.run_time.warn_above_min=soon must"),
    (["callbacks.model_checkpoint.monitor=val/accuracy"], "callbacks.model_checkpoint.monitor=val/accuracy"),
    (["callbacks.model_checkpoint.mode=min"], "callbacks.model_checkpoint.mode=min takes the worst val/acc"),
    (["callbacks.lr_monitor.logging_interval=hour"], "callbacks.lr_monitor.logging_interval=hour must"),
    (["callbacks.model_summary.max_depth=deep"], "callbacks.model_summary.max_depth=deep must"),
    (["logger.tensorboard.default_hp_metric=maybe"], "default_hp_metric='maybe' (a string) must be true or false"),
]


@pytest.mark.parametrize(("args", "message"), BAD_VALUES, ids=[" ".join(args) for args, _ in BAD_VALUES])
def test_a_bad_callback_or_logger_value_is_one_line_with_an_example(finished_run, tmp_path, args, message):
    root, _ = finished_run
    result = train(root, *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line(result, message, "e.g. ")
    assert not (tmp_path / "run").exists()


def test_a_bad_callback_value_is_refused_before_torch_is_imported(finished_run, tmp_path, monkeypatch):
    root, _ = finished_run
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # each module imported, one line each on stderr
    result = run_process("lit_cifar.train", *tiny_cifar_overrides(root), "callbacks=lookahead",
                         "callbacks.lookahead.power=abc", f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert result.returncode == 2 and errors(result), result.stderr[-3000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import")]
    assert "hydra" in imported and "torch" not in imported


# 4. A folder that holds no run, or a sweep, says so.


def test_a_folder_of_other_files_is_named_as_holding_no_run(finished_run, tmp_path):
    root, _ = finished_run
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("my notes")
    before = file_hashes(folder)
    for resume in ([], ["ckpt_path=last"]):
        result = train(root, *resume, f"hydra.run.dir={folder}")
        assert_one_line(result, f"{folder} holds files but no lit_cifar run; pick an empty or new folder")
        assert file_hashes(folder) == before


def test_a_sweep_dir_given_as_a_run_dir_is_named_as_a_sweep(finished_run, grid_dir):
    root, _ = finished_run
    before = file_hashes(grid_dir)
    for resume in ([], ["ckpt_path=last"]):
        result = train(root, *resume, f"hydra.run.dir={grid_dir}")
        assert_one_line(result, f"{grid_dir} is a sweep dir; pass one of its job folders",
                        f"{python()} -m lit_cifar.rerun {grid_dir}")  # fmt: skip
        assert file_hashes(grid_dir) == before


# 5. A sweep job's bad value is one line on the console; the traceback only of an unexpected error, in its log.


class Boom:
    """A callback whose construction fails as a bug would (no user error)."""

    def __init__(self) -> None:
        raise RuntimeError("a bug, not a bad value")


def test_a_failed_jobs_console_gets_its_one_line_and_only_a_bugs_log_its_traceback(finished_run, tmp_path):
    root, _ = finished_run
    sweep_dir = tmp_path / "sweep"
    result = run_cli("lit_cifar.train", "-m", *tiny_cifar_overrides(root), *QUICK, "trainer.fast_dev_run=true",
                     "optim.lr=1e-3,-1", f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    console = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in console, console[-3000:]
    assert console.count("job failed: optim.lr=-1 must be a positive number, e.g. optim.lr=1e-3") == 1, console[-3000:]
    assert "Traceback" not in (sweep_dir / "optim.lr=-1" / "train.log").read_text()
    assert json.loads((sweep_dir / "optim.lr=-1" / "metrics.json").read_text())["status"] == "failed"

    bug_dir = tmp_path / "bug"
    result = run_cli("lit_cifar.train", "-m", *tiny_cifar_overrides(root), *QUICK, "trainer.fast_dev_run=true",
                     "+callbacks.boom._target_=test_trust_start.Boom", f"hydra.sweep.dir={bug_dir}")  # fmt: skip
    console = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in console, console[-3000:]
    assert console.count("job failed: ") == 1 and "a bug, not a bad value" in console
    log = (bug_dir / "0" / "train.log").read_text()
    assert "Traceback" in log and "RuntimeError: a bug, not a bad value" in log


def as_recorded_before_debug_presets(config: dict) -> dict:
    """A run's config as lit_cifar recorded it before `debug`, `name` and `tags` existed and while EpochLog took a
    name."""
    for key in ("debug", "name", "tags"):
        config.pop(key, None)
        config["callbacks"]["hparams"]["texts"].pop(key, None)
    config["callbacks"]["epoch_log"]["name"] = ""
    return config


def test_a_run_recorded_by_the_previous_version_extends(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [*tiny_cifar_overrides(cifar_root), f"hydra.run.dir={run_dir}"]
    assert run_cli("lit_cifar.train", *args, "trainer.max_epochs=1").returncode == 0
    resolved = run_dir / ".hydra" / "resolved.yaml"
    OmegaConf.save(as_recorded_before_debug_presets(OmegaConf.to_container(OmegaConf.load(resolved))), resolved)
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        ckpt = torch.load(path, weights_only=True)
        as_recorded_before_debug_presets(ckpt["run_config"])
        torch.save(ckpt, path)

    result = run_cli("lit_cifar.train", *args, "trainer.max_epochs=2", "ckpt_path=last")

    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["start"] == "extended"


def test_a_checkpoints_state_never_picks_another_runs_weights_to_test(cifar_root, tmp_path):
    """A checkpoint whose ModelCheckpoint state names another run's best file: a start from it with nothing
    left to train tests its own weights, never that file's."""
    runs = {name: tmp_path / name for name in ("other", "source", "new")}
    common = [*tiny_cifar_overrides(cifar_root), "trainer.max_epochs=1"]
    for name, seed in (("other", 1), ("source", 2)):
        assert run_cli("lit_cifar.train", *common, f"seed={seed}", f"hydra.run.dir={runs[name]}").returncode == 0
    other = json.loads((runs["other"] / "metrics.json").read_text())
    source = json.loads((runs["source"] / "metrics.json").read_text())
    assert other["metrics"]["test/acc"] != source["metrics"]["test/acc"]
    crafted = tmp_path / "crafted.ckpt"
    ckpt = torch.load(runs["source"] / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = (value for key, value in ckpt["callbacks"].items() if key.startswith("ResumableCheckpoint"))
    state["best_model_path"] = other["tested_checkpoint"]
    state["best_k_models"] = {other["tested_checkpoint"]: torch.tensor(1.0)}
    torch.save(ckpt, crafted)

    result = run_cli("lit_cifar.train", *common, "seed=2", f"ckpt_path={crafted}", f"hydra.run.dir={runs['new']}")

    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((runs["new"] / "metrics.json").read_text())
    assert record["tested_checkpoint"] != other["tested_checkpoint"]
    assert record["metrics"]["test/acc"] == source["metrics"]["test/acc"]


def test_a_slurm_sweep_where_slurm_is_not_installed_is_one_line(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))  # the command itself is started by its full path
    args = ["-m", "hydra/launcher=slurm", *tiny_cifar_overrides(cifar_root), f"hydra.sweep.dir={tmp_path / 's'}"]
    result = run_process("lit_cifar.train", *args, "seed=1,2")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: hydra/launcher=slurm needs SLURM's sbatch on this machine's PATH"), line
