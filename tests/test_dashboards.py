"""What a person reads of a run: its log, TensorBoard (a real server over sweeps and runs), and the plots."""

import csv
import json
import re
import sys
from io import BytesIO
from pathlib import Path
from urllib.request import urlopen

import pytest
import torch
from conftest import get, run_cli, served, tiny_cifar_overrides
from PIL import Image

from lit_cifar.callbacks.figures import confusion_figure

EPOCH_LINE = re.compile(
    r"epoch (\d+)/(\d+)  train loss ([\d.]+) acc ([\d.]+)  val loss ([\d.]+) acc ([\d.]+) \(best ([\d.]+)\)"
    r"  lr ([\d.e+-]+)  ([\d.]+) s$"
)


def epoch_rows(csv_dir: Path) -> list[dict[str, float]]:
    """Per epoch, the epoch-level values Lightning wrote to metrics.csv (one row per logging call)."""
    epochs: dict[int, dict[str, float]] = {}
    with open(csv_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            values = {
                k: float(v)
                for k, v in row.items()
                if v and k in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")
            }
            if values and not row.get("test/acc"):
                epochs.setdefault(int(row["epoch"]), {}).update(values)
    return [epochs[e] for e in sorted(epochs)]


@pytest.mark.slow
def test_a_three_epoch_run_leaves_one_line_per_epoch_in_train_log_and_on_the_console(cifar_root, tmp_path):
    run_dir = tmp_path / "run"
    args = ["model=week11_cnn", "trainer.max_epochs=3", "scheduler=step", "scheduler.step_size=1", "optim.lr=0.004"]
    proc = run_cli(
        "lit_cifar.train",
        *tiny_cifar_overrides(cifar_root)[:-1],  # the default progress bar: output piped, so none is drawn
        *args,
        "logger=[tensorboard,csv]",
        f"hydra.run.dir={run_dir}",
        fresh_process=True,  # what a console shows of a whole process, Lightning's once-a-process lines included
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    lines = [m for m in map(EPOCH_LINE.search, log.splitlines()) if m]
    expected = epoch_rows(run_dir / "csv")
    assert len(lines) == len(expected) == 3
    for n, (line, row) in enumerate(zip(lines, expected, strict=True)):
        epoch, total, train_loss, train_acc, val_loss, val_acc, best, lr, seconds = line.groups()
        assert (int(epoch), int(total)) == (n + 1, 3)
        for value, name in [(train_loss, "train/loss"), (train_acc, "train/acc"), (val_loss, "val/loss")]:
            assert float(value) == pytest.approx(row[name], abs=5e-5), name
        assert float(val_acc) == pytest.approx(row["val/acc"], abs=5e-5)
        assert float(best) == pytest.approx(row["val/acc_best"], abs=5e-5)
        assert float(lr) == pytest.approx(0.004 * 0.5**n)  # StepLR halves it after every epoch
        assert float(seconds) > 0
    console = proc.stdout + proc.stderr
    assert [m.group(0) for m in map(EPOCH_LINE.search, console.splitlines()) if m] == [m.group(0) for m in lines]
    # The start names the run dir and the resolved config; none of Lightning's noise, each line once.
    assert log.index(f"run dir {run_dir}") < log.index("epoch 1/3")
    assert re.search(r"optim \(adam\) +algorithm=torch.optim.Adam lr=0.004 ", log)
    for noise in ("srun", "Tip", "litlogger", "MeanMetric", "MulticlassAccuracy", "Epoch 2/2"):
        assert noise not in console, noise
    assert console.count("GPU available") == 1
    assert "Week11CNN" in console  # the summary's row of the net


QUICK = ["model=week11_cnn", "trainer.max_epochs=2", "trainer.limit_train_batches=2", "logger=[tensorboard,csv]"]
SHOWN = ["epochs", "lr", "model", "run", "status"]  # callbacks.hparams.shown, sorted by name
COLUMNS = SHOWN + [
    "batch_size",
    "dataset",
    "dropout",
    "gamma",
    "label_smoothing",
    "max_epochs",
    "name",
    "optimizer",
    "scheduler",
    "seed",
    "step_size",
    "tags",
    "weight_decay",
]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """A folder as `make tensorboard` serves it: a two-job sweep under multirun/, two single runs under outputs/,
    one of them with a step schedule (the only run with a gamma and a step size)."""
    from conftest import write_cifar

    root = tmp_path_factory.mktemp("logs")
    data = tiny_cifar_overrides(write_cifar(root / "data"))
    sweep = run_cli("lit_cifar.train", "-m", *data, *QUICK, "optim.lr=1e-3,2e-3", f"hydra.sweep.dir={root}/multirun/s")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    for name, extra in [("a", []), ("b", ["scheduler=step", "scheduler.gamma=0.2"])]:
        run = run_cli("lit_cifar.train", *data, *QUICK, *extra, f"hydra.run.dir={root}/outputs/{name}")
        assert run.returncode == 0, run.stderr[-3000:]
    return root


def tensorboard(logdir: Path, runs: int):
    """A real TensorBoard server over `logdir`, once it serves `runs` runs."""
    command = [Path(sys.executable).parent / "tensorboard", "--logdir", str(logdir), "--host", "127.0.0.1", "--port"]
    return served(command, lambda url: len(json.loads(urlopen(f"{url}/data/runs").read())) >= runs)


@pytest.mark.slow
def test_tensorboard_serves_every_run_every_hparams_column_metrics_and_images(logs):
    jobs = ["multirun/s/tensorboard/optim.lr=0.001", "multirun/s/tensorboard/optim.lr=0.002"]
    sessions = [*jobs, "outputs/a/tensorboard", "outputs/b/tensorboard"]
    job_log = (logs / "multirun/s/optim.lr=0.002/train.log").read_text()
    assert "epoch 2/2  train loss" in job_log
    with tensorboard(logs, runs=len(sessions)) as url:
        assert sorted(sessions) == sorted(get(f"{url}/data/runs"))  # no run without data (a sweep's config)

        experiment = get(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
        assert [info["name"] for info in experiment["hparamInfos"]] == COLUMNS  # the same order for every run
        assert [info["name"] for info in experiment["hparamInfos"] if info.get("differs")] == SHOWN
        assert [m["name"]["tag"] for m in experiment["metricInfos"]] == ["val/acc_best", "time/fit_s"]

        columns = [{"hparam": name, "includeInResult": True} for name in COLUMNS]
        columns += [{"metric": m["name"], "includeInResult": True} for m in experiment["metricInfos"]]
        request = {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": columns,
            "startIndex": 0,
            "sliceSize": 100,
        }
        groups = get(f"{url}/data/plugin/hparams/session_groups", request)["sessionGroups"]
        by_run = {group["sessions"][0]["name"]: group for group in groups}
        assert sorted(by_run) == sorted(sessions)
        for run, group in by_run.items():
            assert sorted(group["hparams"]) == sorted(COLUMNS), run
            assert group["sessions"][0]["status"] == "STATUS_SUCCESS", run
            metrics = {value["name"]["tag"]: value["value"] for value in group["metricValues"]}
            assert sorted(metrics) == ["time/fit_s", "val/acc_best"], run
            folder = logs / run.replace("tensorboard/", "").removesuffix("/tensorboard")
            final = json.loads((folder / "metrics.json").read_text())["metrics"]
            assert metrics["val/acc_best"] == pytest.approx(final["val/acc_best"])
            assert group["hparams"]["status"] == "ok" and group["hparams"]["epochs"] == 2, run
        # each row named as short as it can be told apart: the swept values, or the run's folder
        assert by_run[jobs[1]]["hparams"]["run"] == "optim.lr=0.002"
        assert by_run["outputs/a/tensorboard"]["hparams"]["run"] == "outputs/a"
        assert by_run["outputs/b/tensorboard"]["hparams"]["gamma"] == "0.2"
        assert by_run["outputs/b/tensorboard"]["hparams"]["scheduler"] == "step"
        assert by_run["outputs/a/tensorboard"]["hparams"]["gamma"] == "n/a"
        assert by_run[jobs[1]]["hparams"]["lr"] == 0.002 and by_run[jobs[1]]["hparams"]["dataset"] == "cifar10"

        scalars = get(f"{url}/data/plugin/scalars/tags")
        images = get(f"{url}/data/plugin/images/tags")
        for run in sessions:
            assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/acc"} <= set(scalars[run])
            assert set(images[run]) == {"train/images", "test/confusion_matrix", "test/mistakes"}, run
            assert "epoch" not in scalars[run]  # the horizontal axis of epoch-level curves: 1, 2 (not steps 2, 4)
            for tag in ("val/acc", "train/loss"):
                points = get(f"{url}/data/plugin/scalars/scalars?run={run}&tag={tag}")
                assert [step for _, step, _ in points] == [1, 2], (run, tag)
        query = "run=outputs/a/tensorboard&tag=test/confusion_matrix&sample=0"
        (shown,) = get(f"{url}/data/plugin/images/images?{query}")
        with Image.open(BytesIO(urlopen(f"{url}/data/plugin/images/individualImage?{shown['query']}").read())) as png:
            assert 600 <= png.width <= 1400


@pytest.mark.parametrize("classes", [10, 52])
def test_a_confusion_matrix_is_sized_for_its_classes_with_text_that_contrasts_with_its_cell(classes):
    counts = torch.eye(classes, dtype=torch.long) * 9
    counts[0, 1] = 1  # one of ten airplanes taken for the next class
    figure = confusion_figure(counts, [f"class {i}" for i in range(classes)], "test accuracy 0.99, epoch_003.ckpt")
    width, height = (figure.get_size_inches() * 100).tolist()
    assert width <= 1400 and height <= 1400  # at the 100 dpi TensorBoard gets
    ax = figure.axes[0]
    assert ax.get_title() == "test accuracy 0.99, epoch_003.ckpt"
    assert figure.axes[1].get_ylabel() == "fraction of the true class"  # the colour bar
    texts = {(t.get_position(), t.get_text()): t.get_color() for t in ax.texts}
    if classes == 10:
        assert texts[((0, 0), "9")] == "white" and texts[((1, 0), "1")] == "black"
        assert texts[((1, 1), "9")] == "white" and len(texts) == 11
    else:
        assert not texts  # colours only: 52 counts a row do not fit
