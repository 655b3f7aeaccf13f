import json
import shlex
import signal
from pathlib import Path

import optuna
import pytest
from conftest import REPO, file_hashes, killed_at, run_cli, tiny_cifar_overrides
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from hydra_plugins.lit_cifar_optuna.optuna_sweeper import consecutive_runs
from lit_cifar.run.commands import python
from lit_cifar.run.errors import UserError
from lit_cifar.sweep.search import as_override, journal, search_space

QUICK = ["model=week11_cnn", "trainer.max_epochs=3", "trainer.limit_train_batches=3"]
HOPELESS_LR = 1e-9  # the weights hardly move: validation stays at chance


def search(sweep_dir: Path, cifar_root: Path, *args: str):
    return run_cli(
        "lit_cifar.train",
        "-m",
        "hydra/sweeper=optuna",
        *tiny_cifar_overrides(cifar_root),
        *QUICK,
        *args,
        f"hydra.sweep.dir={sweep_dir}",
    )


def trials(sweep_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="search", storage=journal(sweep_dir))
    return sorted(study.get_trials(), key=lambda t: t.number)


def test_the_search_space_is_written_in_hydras_sweep_syntax():
    params = {
        "optim.lr": "tag(log, interval(1e-4, 1e-2))",
        "data.batch_size": "choice(64, 128)",
        "model.dropout": "interval(0.0, 0.5)",
        "scheduler.step_size": "range(1, 7, step=2)",
        "scheduler": "step",
    }
    space, fixed = search_space(params, ["model.dropout=0.2", "trainer.max_epochs=3", "seed=1,2"])
    assert space == {
        "optim.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "data.batch_size": CategoricalDistribution([64, 128]),
        "scheduler.step_size": IntDistribution(1, 5, step=2),  # Hydra's range leaves its stop out
        "seed": CategoricalDistribution([1, 2]),  # a sweep on the command line joins the space
    }
    assert fixed == ["model.dropout=0.2", "scheduler=step", "trainer.max_epochs=3"]  # the command line wins
    assert search_space({"x": "int(interval(1, 8))"}, [])[0] == {"x": IntDistribution(1, 8)}


@pytest.mark.parametrize(
    "value", ["interval(0.5, 0.1)", "tag(log, interval(0, 1e-2))", "range(5, 5)", "choice()", "interval(1, 1)"]
)
def test_an_empty_range_is_refused_naming_its_key(value):
    with pytest.raises(UserError, match=r"^hydra.sweeper.params: .*optim.lr="):
        search_space({"optim.lr": value}, [])


def test_trials_run_as_jobs_numbered_like_them():
    assert as_override("optim.lr", 0.0012345678) == "optim.lr=0.001235"  # what the job trains with
    assert as_override("data.batch_size", 256) == "data.batch_size=256"
    assert consecutive_runs([7, 2, 3, 9, 8]) == [(2, 4), (7, 10)]


LR = "optim.lr=tag(log, interval(1e-4, 1e-2))"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([LR, "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0 must be a positive integer"),
        (["optim.lr=interval(0.1, 0.01)"], "optim.lr=interval(0.1, 0.01) is empty"),
        (["hydra.sweeper.params={model.dropoutt: 'interval(0, 0.5)'}"], "model.dropoutt"),
        (["optim.lr=0.01"], "the search has nothing to search"),
        ([LR, "+trainer.check_val_every_n_epoch=2"], "check_val_every_n_epoch=2"),
        ([LR, "scheduler=step", "scheduler.gamma=interval(0.1, 0.9)", "scheduler.step_size=3"], "never apply"),
        (
            [
                LR,
                "scheduler=step",
                "scheduler.gamma=interval(0.1, 0.9)",
                "scheduler.step_size=1",
                "trainer.max_epochs=1",
            ],
            "train for 2 epochs or more",  # no step_size would do: the advice is not another step_size
        ),
    ],
)
def test_a_bad_search_is_refused_in_one_line_before_any_trial(tmp_path, cifar_root, args, message):
    result = search(tmp_path / "sweep", cifar_root, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "sweep").glob("trial-*"))


def test_an_unwritable_sweep_dir_is_refused_in_one_line(tmp_path, cifar_root):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "optuna.journal").mkdir()  # a folder where the study's file goes: even root cannot write it
    result = search(sweep_dir, cifar_root, LR)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: cannot write the study to" in result.stderr and "Traceback" not in result.stderr
    assert not list(sweep_dir.glob("trial-*"))


@pytest.mark.slow
def test_a_search_prunes_hopeless_trials_and_goes_on_after_a_kill(tmp_path, cifar_root, monkeypatch):
    """6 trials of a grid: a good lr and a hopeless one, each with 3 weight decays too small to change an
    accuracy (so the good trials tie). The median pruner stops a trial below the finished ones' median at an epoch: the
    hopeless ones. The sweep is stopped (SIGTERM) in trial 2's second epoch; re-running its command finishes
    trial 2 from its last epoch, runs trials 3 to 5, and leaves the finished trials alone."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # for the kill callback
    sweep_dir = tmp_path / "sweep"
    args = [
        "hydra/sweeper/sampler=grid",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        f"optim.lr=choice(3e-3,{HOPELESS_LR})",
        "optim.weight_decay=choice(0,1e-12,2e-12)",
        "model=week11_cnn",
        "trainer.max_epochs=3",
    ]
    first = run_cli(
        "lit_cifar.train", "-m", "hydra/sweeper=optuna", *tiny_cifar_overrides(cifar_root), *args,
        *killed_at(7, signal.SIGTERM, once=tmp_path / "killed", job=2), f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert first.returncode == 128 + signal.SIGTERM, first.stderr[-3000:]
    states = [t.state for t in trials(sweep_dir)]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING] + [TrialState.WAITING] * 3  # a grid's queue
    assert (sweep_dir / "trial-002" / "checkpoints" / "last.ckpt").is_file()
    done_before = {name: file_hashes(sweep_dir / name) for name in ("trial-000", "trial-001")}

    # The command the stopped sweep printed, as a user pastes it (the kill callback comes along, spent).
    command = first.stderr.split("go on from its last finished epoch with: ")[1].splitlines()[0]
    again = run_cli(*shlex.split(command)[2:])
    assert again.returncode == 0, again.stderr[-3000:]

    states = [t.state for t in trials(sweep_dir)]
    assert len(states) == 6 and TrialState.RUNNING not in states
    pruned = [t for t in trials(sweep_dir) if t.state == TrialState.PRUNED]
    assert pruned and all(t.params["optim.lr"] == HOPELESS_LR for t in pruned)
    for t in pruned:
        record = json.loads((sweep_dir / f"trial-{t.number:03d}" / "metrics.json").read_text())
        assert record["status"] == "pruned" and record["pruned_at_epoch"] == len(t.intermediate_values) < 3
    assert {name: file_hashes(sweep_dir / name) for name in done_before} == done_before
    # TensorBoard's HParams: every trial a row with its status and epochs, and each metric column it shows (a
    # row missing one is left out of the parallel coordinates); the killed trial's row is its resumed end's
    for t in trials(sweep_dir):
        hparams, metrics = hparams_session(sweep_dir / "tensorboard" / f"trial-{t.number:03d}")
        pruned = t.state == TrialState.PRUNED
        assert hparams["status"] == ("pruned" if pruned else "ok") and hparams["run"] == f"trial-{t.number:03d}"
        assert hparams["epochs"] == (len(t.intermediate_values) if pruned else 3)
        assert {"val/acc_best", "time/fit_s"} <= metrics
    resumed = (sweep_dir / "trial-002" / "train.log").read_text()
    assert "Restoring states from the checkpoint" in resumed
    table = (sweep_dir / "results.md").read_text()
    assert table.count("| trial-") == 6 and "| pruned |" in table
    # the good trials tie: the first is named best, the others not told apart from it
    assert "\nbest: trial-000, val/acc_best=" in again.stdout and "not told apart from it" in again.stdout
    assert f"{python()} -m lit_cifar.train" in again.stdout and "optim.lr=0.003 optim.weight_decay=0\n" in again.stdout
    assert (sweep_dir / "search_history.png").stat().st_size > 0


def hparams_session(log_dir: Path) -> tuple[dict, set[str]]:
    """The HParams columns of the one session TensorBoard reads in `log_dir`, and the scalars there."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    values = {name: value.string_value or value.number_value for name, value in start.hparams.items()}
    return values, set(events.Tags()["scalars"])


def log_span(job_dir: Path) -> tuple[str, str]:
    """The first and last timestamps of a job's train.log."""
    stamps = [line[1:24] for line in (job_dir / "train.log").read_text().splitlines() if line.startswith("[20")]
    return stamps[0], stamps[-1]


@pytest.mark.slow
def test_parallel_trials_share_the_study(tmp_path, cifar_root):
    """Two trials at a time in joblib's worker processes: each reports its epochs into the one study file, and
    the two trials of a batch overlap in time."""
    sweep_dir = tmp_path / "sweep"
    result = search(
        sweep_dir, cifar_root, LR, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_trials=4",
        "hydra/sweeper/pruner=none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    done = trials(sweep_dir)
    assert [t.state for t in done] == [TrialState.COMPLETE] * 4
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in done)  # written by the jobs' processes
    first, second = log_span(sweep_dir / "trial-000"), log_span(sweep_dir / "trial-001")
    assert second[0] < first[1] and first[0] < second[1]


@pytest.mark.parametrize(
    "choice", ["sampler=tpe", "sampler=random", "pruner=asha", "pruner=median", "pruner=hyperband", "pruner=none"]
)
def test_every_sampler_and_pruner_config_builds(choice):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/sweeper=optuna", f"hydra/sweeper/{choice}"], return_hydra_config=True)
    group = choice.split("=")[0]
    built = instantiate(cfg.hydra.sweeper[group])
    assert isinstance(built, optuna.samplers.BaseSampler if group == "sampler" else optuna.pruners.BasePruner)


@pytest.mark.slow
def test_a_failed_trial_is_marked_failed_and_the_search_goes_on(tmp_path, cifar_root):
    sweep_dir = tmp_path / "sweep"
    result = search(sweep_dir, cifar_root, "hydra/sweeper/sampler=grid", "optim.lr=choice(1e12,3e-3)",
                    "trainer.max_epochs=2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]  # a failed trial is one of a search's results
    assert [t.state for t in trials(sweep_dir)] == [TrialState.FAIL, TrialState.COMPLETE]
    assert json.loads((sweep_dir / "trial-000" / "metrics.json").read_text())["status"] == "failed"
    assert "best: trial-001" in result.stdout


@pytest.mark.slow
def test_a_rerun_search_goes_on_with_new_trials_and_refuses_another_experiment(tmp_path, cifar_root):
    sweep_dir = tmp_path / "sweep"
    space = [LR, "model.dropout=choice(0.1,0.3)", "hydra/sweeper/pruner=none", "trainer.max_epochs=1"]
    assert search(sweep_dir, cifar_root, *space, "hydra.sweeper.n_trials=2").returncode == 0
    record = file_hashes(sweep_dir)

    for change, message in [
        (["model.dropout=choice(0.5,0.6)"], "model.dropout: choice(0.1,0.3) -> choice(0.5,0.6)"),
        (["trainer.max_epochs=2"], "trainer.max_epochs: 1 -> 2 (a search's trials train alike)"),
    ]:
        refused = search(sweep_dir, cifar_root, *space, *change, "hydra.sweeper.n_trials=4")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
        assert message in refused.stderr.splitlines()[-1]
        assert file_hashes(sweep_dir) == record and len(trials(sweep_dir)) == 2

    more = search(sweep_dir, cifar_root, *space, "hydra.sweeper.n_trials=4")
    assert more.returncode == 0, more.stderr[-3000:]
    first, second = trials(sweep_dir)[:2], trials(sweep_dir)[2:]
    assert len(second) == 2 and not {t.params["optim.lr"] for t in first} & {t.params["optim.lr"] for t in second}


@pytest.mark.slow
def test_a_trial_whose_values_do_not_compose_fails_and_the_search_goes_on(tmp_path, cifar_root):
    """model.width exists in resnet_lite's config only: the week11_cnn trial cannot be composed."""
    sweep_dir = tmp_path / "sweep"
    result = search(sweep_dir, cifar_root, "hydra/sweeper/sampler=grid", "model=choice(resnet_lite,week11_cnn)",
                    "model.width=choice(8)", "trainer.max_epochs=1")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert [t.state for t in trials(sweep_dir)] == [TrialState.COMPLETE, TrialState.FAIL]
    reason = json.loads((sweep_dir / "trial-001" / "metrics.json").read_text())["reason"]
    assert reason.startswith("its values do not fit the config: Could not override 'model.width'")
    assert "| trial-001 |" in (sweep_dir / "results.md").read_text()
