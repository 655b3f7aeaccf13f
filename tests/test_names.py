"""A run's and a sweep's name and tags: the folder they name (`outputs/NAME/DATE_TIME`), what the run records of them
(metrics.json, TensorBoard's HParams), and the report's columns; a name that is no plain folder name is refused before
any folder is made."""

import datetime
import json
import re
from pathlib import Path

import pytest
from conftest import run_cli, run_in_process, tiny_cifar_overrides, write_cifar
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d")
ONE_EPOCH = [
    "model=two_layer_fc",
    "model.hidden=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "callbacks.images=null",
]
NOT_A_FOLDER_NAME = (
    "is no plain folder name: use letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. "
    "name=resnet-lr3"
)


def hparams(log_dir: Path) -> dict:
    """The HParams columns of the session TensorBoard reads in `log_dir`."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}


def only_child(folder: Path) -> Path:
    (child,) = folder.iterdir()
    return child


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> Path:
    """A working directory where a run named `baseline` with tags and a two-job sweep named `grid` were trained."""
    where = tmp_path_factory.mktemp("named")
    data = tiny_cifar_overrides(write_cifar(where / "data"))
    run = run_cli("lit_cifar.train", *data, *ONE_EPOCH, "name=baseline", "tags=[cpu,first]", cwd=where)
    assert run.returncode == 0, run.stderr[-3000:]
    sweep = run_cli("lit_cifar.train", "-m", *data, *ONE_EPOCH, "name=grid", "optim.lr=1e-3,2e-3", cwd=where)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    return where


def test_a_named_run_lies_in_outputs_name_date_time_and_records_its_name_and_tags(named):
    assert [p.name for p in (named / "outputs").iterdir()] == ["baseline"]
    run_dir = only_child(named / "outputs" / "baseline")
    assert DATE_TIME.fullmatch(run_dir.name)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok" and record["name"] == "baseline" and record["tags"] == ["cpu", "first"]
    columns = hparams(run_dir / "tensorboard")
    assert columns["name"] == "baseline" and columns["tags"] == "cpu,first"
    assert columns["run"] == f"baseline/{run_dir.name}"


def test_a_named_sweep_lies_in_multirun_name_date_time_and_its_jobs_have_its_name(named):
    sweep_dir = only_child(named / "multirun" / "grid")
    assert DATE_TIME.fullmatch(sweep_dir.name)
    jobs = sorted(p.name for p in sweep_dir.iterdir() if (p / "metrics.json").is_file())
    assert jobs == ["optim.lr=0.001", "optim.lr=0.002"]  # named by their swept values, as in an unnamed sweep
    for job in jobs:
        record = json.loads((sweep_dir / job / "metrics.json").read_text())
        assert record["name"] == "grid" and record["tags"] == [], job
        columns = hparams(sweep_dir / "tensorboard" / job)
        assert (columns["name"], columns["tags"], columns["run"]) == ("grid", "", job)


def test_the_report_shows_each_runs_name_and_tags(named):
    result = run_cli("lit_cifar.report", "outputs/*/*", "multirun/*/*", cwd=named)
    assert result.returncode == 0, result.stderr[-3000:]
    header = next(line for line in result.stdout.splitlines() if line.startswith("| dir |"))
    assert header.startswith("| dir | name | tags |")
    lines = [line for line in result.stdout.splitlines() if line.startswith(("| outputs/", "| multirun/"))]
    assert len(lines) == 3
    assert {tuple(line.split(" | ")[1:3]) for line in lines} == {("baseline", "cpu,first"), ("grid", "")}


def test_runs_without_a_name_keep_their_date_and_time_folders(cifar_root, tmp_path):
    result = run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), "trainer.fast_dev_run=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    day = only_child(tmp_path / "outputs")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", day.name) and re.fullmatch(r"\d\d-\d\d-\d\d", only_child(day).name)
    assert json.loads((only_child(day) / "metrics.json").read_text())["name"] is None


class OneSecond(datetime.datetime):
    """Hydra's `${now:…}` always in the same second: two starts that Hydra would give the same folder."""

    @classmethod
    def now(cls, tz=None):
        return cls(2026, 12, 7, 19, 31, 46)


def test_two_named_starts_in_the_same_second_get_a_folder_each(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setattr("hydra.core.utils.datetime", OneSecond)
    args = [
        *tiny_cifar_overrides(cifar_root),
        "trainer.fast_dev_run=true",
        "model=two_layer_fc",
        "model.hidden=8",
        "name=twice",
    ]
    for seed in (1, 2):
        result = run_in_process("lit_cifar.train", *args, f"seed={seed}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    folders = sorted((tmp_path / "outputs" / "twice").iterdir())
    assert [f.name for f in folders] == ["2026-12-07_19-31-46", "2026-12-07_19-31-46-2"]
    assert [json.loads((f / "metrics.json").read_text())["seed"] for f in folders] == [1, 2]


def assert_refused_leaving_nothing(result, where: Path, before: set[Path], message: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [message]
    assert set(where.rglob("*")) == before  # no outputs/NAME, no multirun/NAME: not even an empty folder


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "../up", "my run", "x*y", "-x"])
@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_name_that_is_no_plain_folder_name_is_one_line_and_makes_no_folder(cifar_root, tmp_path, name, sweep):
    before = set(tmp_path.rglob("*"))
    args = ["-m", "optim.lr=1e-3,2e-3"] if sweep else []
    result = run_cli("lit_cifar.train", *args, *tiny_cifar_overrides(cifar_root), f"name='{name}'", cwd=tmp_path)
    assert_refused_leaving_nothing(result, tmp_path, before, f"error: name='{name}' {NOT_A_FOLDER_NAME}")


@pytest.mark.parametrize(
    "override, message",
    [
        ("tags=5", "error: tags=5 must be a list; set it as such, e.g. tags=[a,b]"),
        ("tags=cpu", "error: tags='cpu' (a string) must be a list; set it as such, e.g. tags=[a,b]"),
        ("name=[a,b]", f"error: name=['a', 'b'] {NOT_A_FOLDER_NAME}"),
    ],
)
def test_a_name_or_tags_of_another_type_is_one_line(cifar_root, tmp_path, override, message):
    before = set(tmp_path.rglob("*"))
    result = run_cli("lit_cifar.train", *tiny_cifar_overrides(cifar_root), override, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [message]
    assert {p for p in tmp_path.rglob("*") if p.is_file()} == {p for p in before if p.is_file()}


@pytest.mark.parametrize(
    ("swept", "message"),
    [
        (
            "name=a,b",
            "error: name is swept (name=a,b), but it changes nothing a job computes: its jobs would be one setting run "
            "2 times; give it one value (name=a), or sweep a setting",
        ),
        (
            "tags=[x],[y],[z]",
            "error: tags is swept (tags=[x],[y],[z]), but it changes nothing a job computes: its jobs would be one "
            "setting run 3 times; give it one value (tags=[x]), or sweep a setting",
        ),
        (
            "data.num_workers=0,1",
            "error: data.num_workers is swept (data.num_workers=0,1), but it changes nothing a job computes: its jobs "
            "would be one setting run 2 times; give it one value (data.num_workers=0), or sweep a setting",
        ),
    ],
)
def test_a_swept_name_or_other_label_is_one_line_and_makes_no_folder(cifar_root, tmp_path, swept, message):
    """A key that changes nothing computed (a name, tags, the loader's workers) swept would train one setting
    several times over, each with the same seed: the table would count it once, the time spent would buy nothing."""
    before = set(tmp_path.rglob("*"))
    args = [*tiny_cifar_overrides(cifar_root), "trainer.fast_dev_run=true", "optim.lr=1e-3,2e-3", swept]
    result = run_cli("lit_cifar.train", "-m", *args, cwd=tmp_path)
    assert_refused_leaving_nothing(result, tmp_path, before, message)


def test_a_label_in_a_searchs_space_is_one_line_and_makes_no_folder(cifar_root, tmp_path):
    before = set(tmp_path.rglob("*"))
    args = [
        *tiny_cifar_overrides(cifar_root),
        "trainer.fast_dev_run=true",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "optim.lr=tag(log,interval(1e-4,1e-2))",
        "data.num_workers=int(interval(0,2))",
    ]
    result = run_cli("lit_cifar.train", "-m", *args, cwd=tmp_path)
    message = (
        "error: data.num_workers is swept (data.num_workers=int(interval(0,2))), but it changes nothing a job "
        "computes: its jobs would be one setting run once per trial; give it one value (data.num_workers=VALUE), or "
        "sweep a setting"
    )
    assert_refused_leaving_nothing(result, tmp_path, before, message)
