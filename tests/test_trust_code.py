"""Nothing from a file chooses the code that runs: a checkpoint's stored config (`evaluate`, `predict`) and a sweep
folder's record (`rerun`) name only the project's own classes, each where its configs name it. Each route below
carries a payload that would create a marker file, were it ever run."""

import csv
import io
import json
import os
import shlex
import signal
from pathlib import Path

import pytest
import torch
from conftest import CLASSES, REPO, file_hashes, killed_at, run_cli, tiny_cifar_overrides
from omegaconf import OmegaConf
from PIL import Image

from lit_cifar.data.make_chars import generate
from lit_cifar.run.commands import python

WEEK11 = "lit_cifar.models.small_cnns.Week11CNN"


class Touch:
    """Unpickled, it creates the file `marker`: what a payload could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def payload_bytes(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(Touch(marker), buffer)
    return buffer.getvalue()


def torch_load(marker: Path) -> dict:
    """A config that Hydra would build into `torch.load` of a pickle held in the config itself."""
    return {"_target_": "torch.load", "f": {"_target_": "io.BytesIO", "initial_bytes": payload_bytes(marker)},
            "weights_only": False}  # fmt: skip


def crafted(trained_run: Path, out: Path, edit) -> Path:
    """The trained run's checkpoint, read as data, its run_config edited by `edit`, saved as `out`."""
    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, out)
    return out


def set_model(value):
    return lambda ckpt: ckpt["run_config"].update(model=value)


def set_data(value):
    return lambda ckpt: ckpt["run_config"].update(data=value)


def with_model(**settings):
    return lambda ckpt: ckpt["run_config"]["model"].update(settings)


ROUTES = {  # name: (how the checkpoint is edited, given the marker; the key path the error names)
    "model": (
        lambda m: set_model(torch_load(m)),
        "model._target_ to torch.load, which is not one of lit_cifar's model",
    ),
    "data": (lambda m: set_data(torch_load(m)), "data._target_ to torch.load, which is not one of lit_cifar's data"),
    "nested in a model's value": (lambda m: with_model(dropout=torch_load(m)), "model.dropout._target_"),
    "a model's _args_": (lambda m: with_model(_args_=[torch_load(m)]), "model._args_"),
    "a target Hydra blocks": (
        lambda m: set_model({"_target_": "os.system", "command": f"touch {m}"}),
        "model._target_ to os.system, which is not one of lit_cifar's models",
    ),
}


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("route", ROUTES)
def test_a_checkpoints_config_never_chooses_the_code_it_is_built_with(trained_run, tmp_path, command, route):
    marker = tmp_path / "marker"
    edit, named = ROUTES[route]
    ckpt = crafted(trained_run, tmp_path / "crafted.ckpt", edit(marker))
    image = tmp_path / "cat.png"
    Image.new("RGB", (32, 32)).save(image)
    extra = [f"hydra.run.dir={tmp_path / 'evaluation'}"] if command == "evaluate" else [f"images={image}"]

    result = run_cli(f"lit_cifar.{command}", f"ckpt_path={ckpt}", *extra)

    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {ckpt}'s run_config sets {named}"), line
    assert line.endswith("; use a checkpoint that lit_cifar.train wrote")
    assert not marker.exists() and not (tmp_path / "evaluation").exists()


def with_data(**settings):
    return lambda ckpt: ckpt["run_config"]["data"].update(settings)


def with_state(**state):
    return lambda ckpt: ckpt["CIFAR10DataModule"].update(state)


STORED_VALUES = {  # name: (how the checkpoint is edited; what the one line says)
    "a batch size of 0": (with_data(batch_size=0), "run_config sets data.batch_size=0 must be"),
    "a batch size that is a word": (with_data(batch_size="x"), "data.batch_size"),
    "a dropout of 5": (with_model(dropout=5.0), "run_config sets model.dropout=5.0 must be"),
    "a mean that is a word": (with_state(mean="x"), "holds a mean of 'x', not 3 finite numbers"),
    "a std of 0": (with_state(std=[0.0, 0.0, 0.0]), "holds a std of [0.0, 0.0, 0.0], not 3 finite numbers above 0"),
}


@pytest.mark.parametrize("value", STORED_VALUES)
def test_a_checkpoints_stored_values_out_of_range_are_one_line(trained_run, tmp_path, value):
    edit, said = STORED_VALUES[value]
    path = crafted(trained_run, tmp_path / "odd.ckpt", edit)
    result = run_cli("lit_cifar.evaluate", f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}") and said in line, line


def test_a_checkpoints_config_is_read_as_values_not_resolved(trained_run, tmp_path):
    """An interpolation is a string like any other: `${oc.env:…}` reads nothing, `${oc.decode:…}` builds nothing."""
    decoded = "${oc.decode:'{_target_: os.system, command: touch " + str(tmp_path / "marker") + "}'}"
    ckpt = crafted(trained_run, tmp_path / "crafted.ckpt", with_model(dropout=decoded))
    result = run_cli("lit_cifar.evaluate", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'evaluation'}")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr[-3000:]
    assert f"error: {ckpt}'s run_config sets model.dropout={decoded} must be a probability" in result.stderr
    assert not (tmp_path / "marker").exists()


def test_a_cifar10_checkpoint_evaluated_where_its_data_is_not_downloads_nothing(trained_run, tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    def download(self):
        raise AssertionError("evaluate downloaded")

    monkeypatch.setattr(CIFAR10, "download", download)
    chars = tmp_path / "chars"
    generate(chars, {"train": 2, "test": 1}, symbols="0Aa", font_dirs=[])
    before = file_hashes(chars)
    ckpt = crafted(trained_run, tmp_path / "run.ckpt", lambda c: c["run_config"]["data"].update(download=True))

    result = run_cli("lit_cifar.evaluate", f"ckpt_path={ckpt}", f"data.root={chars}", f"hydra.run.dir={tmp_path / 'e'}")

    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f"error: CIFAR-10 not found in {chars / 'cifar-10-batches-py'}; evaluate never downloads: point data.root at "
        f"the data {ckpt} was trained on"
    ]
    assert file_hashes(chars) == before and not (tmp_path / "e").exists()


def test_a_checkpoint_evaluated_on_other_classes_says_to_point_data_root_at_its_own(trained_run, tmp_path):
    """Not `data.num_classes=N`, which evaluate does not take."""
    chars = tmp_path / "chars"
    generate(chars, {"train": 2, "test": 1}, symbols="0Aa", font_dirs=[])

    def as_characters(ckpt):  # a 10-class character set, in the layout lit_cifar.train saves for one
        data = {"_target_": "lit_cifar.data.chars.CharsDataModule", "root": str(tmp_path / "elsewhere"),
                "num_classes": 10, "in_channels": 1, "image_size": 32, "val_size": 0.1, "num_workers": 0}  # fmt: skip
        ckpt["run_config"]["data"] = data
        ckpt["CharsDataModule"] = {"class_names": CLASSES, "mean": [0.5], "std": [0.25]}

    ckpt = crafted(trained_run, tmp_path / "chars.ckpt", as_characters)
    result = run_cli("lit_cifar.evaluate", f"ckpt_path={ckpt}", f"data.root={chars}", f"hydra.run.dir={tmp_path / 'e'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f"error: {ckpt} was trained on the classes {CLASSES} but the dataset found holds ['0', 'A', 'a']; point "
        "data.root at the dataset it was trained on"
    ]


# --- rerun: a sweep folder's record replays nothing that chooses code --------------------------------------------


def sweep_record(folder: Path, task: list[str], hydra: list[str] = (), params: dict | None = None) -> Path:
    """A sweep folder as Hydra leaves it before its first job: multirun.yaml with the command line's overrides."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"hydra": {"overrides": {"task": task, "hydra": list(hydra)}, "sweeper": {"params": params}},
              "trainer": {"max_epochs": 1}}  # fmt: skip
    OmegaConf.save(record, folder / "multirun.yaml")
    return folder


def smoke(cifar_root: Path) -> list[str]:
    return [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=1", "trainer.fast_dev_run=true"]


def loads(key: str, pickle: Path) -> list[str]:
    """Overrides that add `torch.load(pickle, weights_only=False)` at `key`."""
    return [f"+{key}._target_=torch.load", f"+{key}.f={pickle}", f"+{key}.weights_only=false"]


def evil_yaml(folder: Path, pickle: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save({"_target_": "torch.load", "f": str(pickle), "weights_only": False}, folder / "evil.yaml")
    return folder / "evil"


RERUN_ROUTES = {  # name: (task overrides, hydra overrides, the override named) given the folder and its pickle
    "a callback's target": (lambda d, p: loads("callbacks.x", p), [], "+callbacks.x._target_=torch.load"),
    "a callback as a dict": (
        lambda d, p: [f"+callbacks.x={{_target_: torch.load, f: {p}, weights_only: false}}"],
        [],
        "+callbacks.x={",
    ),
    "a Hydra callback": (lambda d, p: [], lambda d, p: loads("hydra.callbacks.x", p), "+hydra.callbacks.x._target_"),
    "a group option that is a path": (
        lambda d, p: [f"model={os.path.relpath(evil_yaml(d, p), REPO / 'conf' / 'model')}"],
        [],
        "model=../",
    ),
    "a search path": (
        lambda d, p: [f"model={evil_yaml(d / 'conf' / 'model', p).name}"],
        lambda d, p: [f"hydra.searchpath=[file://{d / 'conf'}]"],
        "hydra.searchpath=",
    ),
    "an optimizer class": (lambda d, p: ["optim.algorithm=evil.Optimizer"], [], "optim.algorithm=evil.Optimizer"),
    "the jobs' environment": (lambda d, p: [], lambda d, p: ["+hydra.job.env_set.PYTHONPATH=" + str(d)], "env_set"),
    "a SLURM job script's last lines": (
        lambda d, p: [],
        lambda d, p: ["hydra/launcher=slurm", f"+hydra.launcher.teardown=[touch {d.parent / 'marker'}]"],
        "+hydra.launcher.teardown=",
    ),
    "a line break in a SLURM setting": (  # the rest of an #SBATCH line runs as shell
        lambda d, p: [],
        lambda d, p: ["hydra/launcher=slurm", f"hydra.launcher.comment='x\ntouch {d.parent / 'marker'}'"],
        "hydra.launcher.comment='x\\ntouch ",
    ),
}


@pytest.mark.parametrize("route", RERUN_ROUTES)
def test_rerun_refuses_a_sweep_record_that_chooses_code_before_anything_runs(tmp_path, cifar_root, route):
    folder, marker = tmp_path / "sweep", tmp_path / "marker"
    folder.mkdir()
    pickle = folder / "payload.pt"
    torch.save(Touch(marker), pickle)
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w')\n")  # imported where a class path is looked up
    task, hydra, named = RERUN_ROUTES[route]
    task, hydra = task(folder, pickle), hydra(folder, pickle) if callable(hydra) else hydra
    sweep_record(folder, [*smoke(cifar_root), *task], hydra)
    before = file_hashes(folder)

    result = run_cli("lit_cifar.rerun", str(folder), cwd=folder)  # the folder's own modules on sys.path

    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {folder / 'multirun.yaml'}'s override ") and named in line, line
    assert line.endswith(
        "nothing a folder holds chooses code: give that override on the command line yourself if you trust it"
    )
    assert not marker.exists() and file_hashes(folder) == before and result.stdout == ""


BROKEN_RECORDS = {
    "an override Hydra cannot parse": "hydra:\n  overrides:\n    task: ['--config-dir=x']\n    hydra: []\n",
    "task overrides as a string": "hydra:\n  overrides:\n    task: optim.lr=0.1\n    hydra: []\n",
    "no overrides": "hydra: {}\n",
    "cut short": "hydra:\n  overrides:\n    task: [optim.lr=0.1\n",
}


@pytest.mark.parametrize("command", ["lit_cifar.rerun", "lit_cifar.report"])
@pytest.mark.parametrize("broken", BROKEN_RECORDS)
def test_a_broken_sweep_record_is_one_line_naming_it(tmp_path, command, broken):
    folder = tmp_path / "sweep"
    (folder / "job").mkdir(parents=True)
    (folder / "job" / "metrics.json").write_text('{"status": "ok", "metrics": {"val/acc_best": 0.5}}')
    (folder / "multirun.yaml").write_text(BROKEN_RECORDS[broken])
    result = run_cli(command, str(folder))
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {folder / 'multirun.yaml'} is not a sweep record Hydra wrote ("), line


def test_rerun_refuses_code_in_the_records_grid(tmp_path, cifar_root):
    folder = sweep_record(tmp_path / "sweep", smoke(cifar_root), params={"+callbacks.x._target_": "os.system,print"})
    result = run_cli("lit_cifar.rerun", str(folder))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr[-3000:]
    assert "multirun.yaml's override +callbacks.x._target_=os.system,print sets callbacks.x._target_" in result.stderr


@pytest.mark.slow
def test_rerun_prints_the_command_it_runs(tmp_path, cifar_root):
    folder = sweep_record(tmp_path / "sweep", [*smoke(cifar_root), "optim.lr=1e-3,2e-3"])
    result = run_cli("lit_cifar.rerun", str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    command = shlex.join([python(), "-m", "lit_cifar.train", "-m", *smoke(cifar_root), "optim.lr=1e-3,2e-3",
                          f"hydra.sweep.dir={folder.resolve()}"])  # fmt: skip
    assert result.stdout.splitlines()[0] == command
    assert sorted(p.name for p in folder.glob("optim.lr=*")) == ["optim.lr=0.001", "optim.lr=0.002"]


@pytest.mark.slow
def test_a_killed_confirmation_goes_on_with_the_command_it_prints(tmp_path, cifar_root, monkeypatch):
    """The go-on line a stopped confirmation prints (and the report shows) confirms again: the sweep's own
    command would leave its job interrupted. The kill callback, code of the tests' own, comes along."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    folder = tmp_path / "sweep"
    kill = killed_at(7, signal.SIGTERM, once=tmp_path / "killed-once", job=2)  # job 2: the confirmation's first
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=2", *kill]
    grid = run_cli("lit_cifar.train", "-m", *args, "seed=0,1", f"hydra.sweep.dir={folder}")
    assert grid.returncode == 0, grid.stderr[-3000:]

    killed = run_cli("lit_cifar.rerun", str(folder), "--top", "1", "--seeds", "1", kill[0])
    assert killed.returncode == 128 + signal.SIGTERM, killed.stderr[-3000:]
    go_on = killed.stderr.split("go on from its last finished epoch with: ")[1].splitlines()[0]
    rerun = [python(), "-m", "lit_cifar.rerun", str(folder.resolve()), "--top", "1", "--seeds", "1", kill[0]]
    assert go_on == shlex.join(rerun)
    interrupted = folder / "seed=2"
    assert (interrupted / "checkpoints" / "last.ckpt").is_file() and not (interrupted / "metrics.json").exists()
    shown = run_cli("lit_cifar.report", str(folder))
    assert shown.returncode == 0, shown.stderr[-3000:]
    with (folder / "results.csv").open() as f:
        (row,) = [row for row in csv.DictReader(f) if row["job"] == "seed=2"]
    assert row["status"] == "interrupted" and row["reason"].endswith(f"re-run its confirmation to resume it: {go_on}")

    again = run_cli(*shlex.split(go_on)[2:])  # as a user pastes it
    assert again.returncode == 0, again.stderr[-3000:]
    record = json.loads((interrupted / "metrics.json").read_text())
    assert record["status"] == "ok" and record["start"] == "resumed" and record["seed"] == 2


@pytest.mark.slow
def test_rerun_of_a_search_refuses_a_trial_left_running_whose_values_choose_code(tmp_path, cifar_root):
    """A trial left running is run again with the values the study's file holds: a key outside the search space
    comes from that file alone."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    from lit_cifar.sweep.search import STUDY_FILE, journal

    folder, marker = tmp_path / "search", tmp_path / "marker"
    search = ["hydra/sweeper=optuna", "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=1"]
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=1", "optim.lr=choice(1e-3,2e-3)"]
    first = run_cli("lit_cifar.train", "-m", *search, *args, f"hydra.sweep.dir={folder}")
    assert first.returncode == 0, first.stderr[-3000:]
    torch.save(Touch(marker), folder / "payload.pt")
    study = optuna.load_study(storage=journal(folder), study_name="search")
    values = {"optim.lr": [0.001, 0.002], "+callbacks.x._target_": ["torch.load"],
              "+callbacks.x.f": [str(folder / "payload.pt")], "+callbacks.x.weights_only": [False]}  # fmt: skip
    study.ask({key: CategoricalDistribution(choices) for key, choices in values.items()})  # left running
    before = file_hashes(folder)

    result = run_cli("lit_cifar.rerun", str(folder))

    assert not marker.exists() and not (folder / "trial-001").exists()
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1].startswith(
        f"error: {folder / STUDY_FILE}'s override +callbacks.x._target_=torch.load sets callbacks.x._target_ to "
        "torch.load, which is not one of lit_cifar's callbacks"
    )
    assert file_hashes(folder) == before


@pytest.mark.slow
def test_rerun_of_a_search_refuses_a_queued_or_running_trial_outside_the_space(tmp_path, cifar_root):
    """Optuna runs a queued trial with the values its file holds, even outside the space (it only warns): a search
    that goes on refuses such a trial, queued or left running, naming the file; no trial runs."""
    import optuna
    from optuna.distributions import FloatDistribution

    from lit_cifar.sweep.search import STUDY_FILE, journal

    folder = tmp_path / "search"
    search = ["hydra/sweeper=optuna", "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=1"]
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=1"]
    space = "optim.lr=interval(1e-4,1e-2)"
    first = run_cli("lit_cifar.train", "-m", *search, *args, space, f"hydra.sweep.dir={folder}")
    assert first.returncode == 0, first.stderr[-3000:]
    study = optuna.load_study(storage=journal(folder), study_name="search")
    study.enqueue_trial({"optim.lr": 0.05})
    before = file_hashes(folder)

    queued = run_cli("lit_cifar.rerun", str(folder), "hydra.sweeper.n_trials=2")

    assert queued.returncode == 2, queued.stderr[-3000:]
    assert queued.stderr.splitlines()[-1] == (
        f"error: {folder / STUDY_FILE} holds trial 1, queued, with optim.lr=0.05, outside this search's space "
        "(optim.lr from 0.0001 to 0.01); that file is data: search again in a new hydra.sweep.dir"
    )
    assert file_hashes(folder) == before and not (folder / "trial-001").exists()

    (folder / STUDY_FILE).unlink()  # a fresh study whose trial was left running with a value outside the space
    fresh = optuna.create_study(storage=journal(folder), study_name="search", direction="maximize")
    fresh.ask({"optim.lr": FloatDistribution(0.5, 0.5)})
    running = run_cli("lit_cifar.rerun", str(folder), "hydra.sweeper.n_trials=2")
    assert running.returncode == 2, running.stderr[-3000:]
    assert running.stderr.splitlines()[-1] == (
        f"error: {folder / STUDY_FILE} holds trial 0, left running, with optim.lr=0.5, outside this search's space "
        "(optim.lr from 0.0001 to 0.01); that file is data: search again in a new hydra.sweep.dir"
    )
