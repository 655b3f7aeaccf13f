"""Each bad input: a one-line `error:` naming the key or file and the fix, a non-zero exit, and nothing
outside the new run dir changed (no earlier run dir, checkpoint or dataset). `CASES` holds every case the
README's table lists, and the table is checked against it."""

import hashlib
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from conftest import REPO, run_cli, tiny_cifar_overrides, write_cifar
from omegaconf import OmegaConf
from PIL import Image
from torch import nn
from torchvision.datasets import CIFAR10

from lit_cifar.callbacks.finite_loss import FiniteLossCheck, NonFiniteLossError
from lit_cifar.data.make_chars import generate
from lit_cifar.run.checkpoints import check_fits
from lit_cifar.run.errors import UserError, user_message
from lit_cifar.run.validate import warn_idle_settings


def snapshot(*folders: Path, outside: Path | None = None) -> dict[Path, tuple[int, str]]:
    """Every file under `folders` (but not under `outside`) with its mtime and content hash."""
    return {
        path: (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not (outside and path.is_relative_to(outside))
    }


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.fixture
def untouched(trained_run):
    """Fails the test if it changed the trained run or its dataset."""
    before = snapshot(trained_run, trained_run.parent / "data")
    yield trained_run
    assert snapshot(trained_run, trained_run.parent / "data") == before


class DiskFull(pl.Callback):
    """Writes to /dev/full when training starts: the error a full disk gives (ENOSPC), from the kernel."""

    def on_train_start(self, trainer, module) -> None:
        with open("/dev/full", "wb", buffering=0) as full:
            full.write(b"a checkpoint")


# A case's command: (tmp_path, the trained run) → (module, arguments). The test adds hydra.run.dir=tmp_path/run
# to train and evaluate unless the case names its own folder.
Command = Callable[[Path, Path], tuple[str, list[str]]]


@dataclass(frozen=True)
class Case:
    input: str  # the README table's first column, word for word
    command: Command
    fragments: tuple[str, ...]


def train_on(root: Path, *args: str) -> tuple[str, list[str]]:
    """One epoch on the tiny CIFAR-10 at `root` (flags such as -m go first, as Hydra's parser wants)."""
    flags = [a for a in args if a.startswith("-")]
    return "lit_cifar.train", [*flags, *tiny_cifar_overrides(root), "trainer.max_epochs=1", *args[len(flags) :]]


def search_on(root: Path, tmp: Path, *args: str) -> tuple[str, list[str]]:
    """An Optuna search of two trials over optim.lr on the tiny CIFAR-10 at `root`, into tmp/run."""
    search = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "optim.lr=interval(1e-4,1e-2)"]
    return train_on(root, "-m", *search, *args, f"hydra.sweep.dir={tmp / 'run'}")


def train_chars_on(root: Path, *args: str) -> tuple[str, list[str]]:
    """One epoch on the character set at `root`, at 32 pixels."""
    data = ["data=chars", f"data.root={root}", "data.image_size=32", "data.batch_size=16", "data.num_workers=0"]
    return "lit_cifar.train", [*data, "trainer=cpu", "callbacks.progress_bar=null", "trainer.max_epochs=1", *args]


def tiny(tmp: Path, damage: Callable[[Path], object] = lambda folder: None) -> Path:
    """A tiny CIFAR-10 under tmp/data, with `damage` done to its batch folder."""
    root = write_cifar(tmp / "data")
    damage(root / CIFAR10.base_folder)
    return root


def repickle(path: Path, change: Callable[[dict], object]) -> None:
    entry = pickle.loads(path.read_bytes())
    change(entry)
    path.write_bytes(pickle.dumps(entry))


def chars(tmp: Path) -> Path:
    """Three character classes (0, A, a), 3 training and 1 test image each."""
    root = tmp / "chars"
    generate(root, {"train": 3, "test": 1}, symbols="0Aa", font_dirs=[])
    return root


def with_fifo(folder: Path) -> Path:
    os.mkfifo(folder / "x.png")
    return folder


def config(*args: str, fragments: tuple[str, ...]) -> Case:
    """A value set on the train command line; the case's input is the arguments themselves."""
    return Case(" ".join(f"`{a}`" for a in args), lambda tmp, run: train_on(run.parent / "data", *args), fragments)


def ckpt(run: Path) -> str:
    return f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"


def pixel_png(tmp: Path) -> Path:
    Image.new("RGB", (32, 32)).save(tmp / "image.png")
    return tmp / "image.png"


CASES = [
    # values out of range, wrong types, unknown keys
    config("data.batch_size=0", fragments=("data.batch_size=0 must be a positive integer",)),
    config("optim.lr=-0.1", fragments=("optim.lr=-0.1 must be a positive number", "e.g. optim.lr=1e-3")),
    config("optim.lr=null", fragments=("optim.lr=null must be a positive number",)),
    config("optim.weight_decay=-1", fragments=("optim.weight_decay=-1 must be a number ≥ 0",)),
    config("seed=abc", fragments=("seed=abc must be an integer",)),
    config("seed=-1", fragments=("seed=-1 must be an integer in [0, 4294967295]",)),
    config("tags=5", fragments=("tags=5 must be a list", "e.g. tags=[a,b]")),
    config("module.label_smoothing=2", fragments=("module.label_smoothing=2 must be a number in [0, 1)",)),
    config("scheduler=step", "scheduler.gamma=-0.5", fragments=("scheduler.gamma=-0.5 must be a factor in (0, 1]",)),
    config("scheduler=step", "scheduler.gamma=0", fragments=("scheduler.gamma=0 must be",)),
    config("scheduler=step", "scheduler.step_size=0", fragments=("scheduler.step_size=0 must be a positive",)),
    config("trainer.max_epochs=-1", fragments=("trainer.max_epochs=-1 must be a positive integer",)),
    config("trainer.max_epochs=0", fragments=("trainer.max_epochs=0 must be a positive integer",)),
    config("data.val_size=1.5", fragments=("data.val_size=1.5 must be a number of images", "or a fraction")),
    config("data.val_size=100", fragments=("data.val_size=100 holds out 100 of the 100 training images",)),
    config("data.batch_size=abc", fragments=("data.batch_size=abc must be a positive integer",)),
    config("data.translate=32", fragments=("data.translate=32 shifts images by as much as their whole size",)),
    config(
        "scheduler=cosine",
        "+scheduler.warmup_fraction=0.2",
        fragments=("scheduler.warmup_fraction is not an option of CosineAnnealingLR", "~scheduler.warmup_fraction"),
    ),
    config("+optim.betas=[0.9,0.99]", "optim=sgd", fragments=("optim.betas is not an option of SGD",)),
    config("+trainer.bogus=1", fragments=("cannot build trainer", "bogus")),
    config("+modle=week11_cnn", fragments=("+modle=week11_cnn adds a top-level key", "did you mean model=week11_cnn")),
    config("modle=week11_cnn", fragments=("no key modle in the config", "did you mean model=week11_cnn")),
    config("optim.learning_rate=1e-3", fragments=("no key optim.learning_rate", "did you mean optim.lr?")),
    config("data.bogus=1", fragments=("no key data.bogus in the config", "the keys of data: root,")),
    config("model=nope", fragments=("Could not find 'model/nope'", "options in 'model': challenge_cnn_bn")),
    config("optim.lr=[", fragments=("optim.lr=[", "override_grammar")),
    Case("`evaluate bogus=1`", lambda tmp, run: ("lit_cifar.evaluate", ["bogus=1"]), ("no key bogus", "ckpt_path,")),
    config("trainer.accelerator=gpu", "trainer.devices=64", fragments=("CUDA GPU(s)", "trainer=cpu")),
    Case(
        "`-m +trainer.strategy=ddp`",
        lambda tmp, run: train_on(run.parent / "data", "-m", "+trainer.strategy=ddp", f"hydra.sweep.dir={tmp / 'run'}"),
        ("a multirun cannot train on several devices", "trainer.devices=1"),
    ),
    Case(
        "`-m optim.lr=1e-3,2e-3 name=a,b`",
        lambda tmp, run: train_on(
            run.parent / "data", "-m", "optim.lr=1e-3,2e-3", "name=a,b", f"hydra.sweep.dir={tmp / 'run'}"
        ),
        ("name is swept (name=a,b), but it changes nothing a job computes", "give it one value (name=a)"),
    ),
    # what needs a validation split, without one
    config(
        "data.val_size=0",
        "callbacks=early_stopping",
        fragments=("callbacks.early_stopping monitors val/acc, which data.val_size=0 never computes",),
    ),
    Case(
        "`-m hydra/sweeper=optuna data.val_size=0`",
        lambda tmp, run: search_on(run.parent / "data", tmp, "data.val_size=0"),
        ("the search's pruner (SuccessiveHalvingPruner) judges trials by validation", "hydra/sweeper/pruner=none"),
    ),
    Case(
        "`-m hydra/sweeper=optuna hydra/sweeper/pruner=none data.val_size=0`",
        lambda tmp, run: search_on(run.parent / "data", tmp, "hydra/sweeper/pruner=none", "data.val_size=0"),
        ("optimized_metric=val/acc_best is a validation metric", "optimized_metric=test/acc"),
    ),
    # where the run goes
    Case(
        "`hydra.run.dir` an existing file",
        lambda tmp, run: train_on(run.parent / "data", f"hydra.run.dir={run / '.hydra' / 'config.yaml'}"),
        ("config.yaml is a file or lies under one, where a folder is needed",),
    ),
    Case(
        "`hydra.run.dir` inside a file",
        lambda tmp, run: train_on(run.parent / "data", f"hydra.run.dir={run / 'metrics.json' / 'run'}"),
        ("metrics.json/run is a file or lies under one",),
    ),
    Case(
        "the disk fills up",
        lambda tmp, run: train_on(run.parent / "data", "+callbacks.full._target_=test_errors.DiskFull"),
        ("no space left on the device", "free some space"),
    ),
    Case(
        "`ckpt_path=last` into a folder that holds no run",
        lambda tmp, run: train_on(run.parent / "data", "ckpt_path=last"),
        ("nothing to resume", "holds no run"),
    ),
    Case(
        "a checkpoint of another model",
        lambda tmp, run: train_on(run.parent / "data", "model=resnet_lite", ckpt(run)),
        ("holds model Week11CNN on CIFAR10DataModule", "configures model ResNetLite"),
    ),
    # the dataset
    Case(
        "CIFAR-10 missing, no network",
        lambda tmp, run: train_on(tmp / "empty", "data.download=true"),
        ("could not download CIFAR-10", "copy the 'cifar-10-batches-py' folder"),
    ),
    Case(
        "CIFAR-10 missing, `data.download=false`",
        lambda tmp, run: train_on(tmp / "empty"),
        ("CIFAR-10 not found in", "set data.download=true"),
    ),
    Case(
        "`data.root` a file",
        lambda tmp, run: train_on(run / "metrics.json", "data.download=true"),
        ("metrics.json is a file; set data.root to the folder",),
    ),
    Case(
        "a batch file missing",
        lambda tmp, run: train_on(tiny(tmp, lambda f: (f / "data_batch_3").unlink())),
        ("data_batch_3 is missing",),
    ),
    Case(
        "a folder in place of a batch file",
        lambda tmp, run: train_on(tiny(tmp, lambda f: [(f / "data_batch_3").unlink(), (f / "data_batch_3").mkdir()])),
        ("data_batch_3 is a folder where the CIFAR-10 batch file should be",),
    ),
    Case(
        "a batch file corrupt",
        lambda tmp, run: train_on(tiny(tmp, lambda f: (f / "data_batch_3").write_bytes(b"\x80\x04 truncated"))),
        ("data_batch_3 is not a readable CIFAR-10 file",),
    ),
    Case(
        "pixels stored as floats in [0, 1]",
        lambda tmp, run: train_on(
            tiny(tmp, lambda f: repickle(f / "data_batch_2", lambda e: e.update(data=e["data"] / 255)))
        ),
        ("data_batch_2 is not a CIFAR-10 batch (its pixels are float64, not uint8 values 0-255)",),
    ),
    Case(
        "rows of the wrong length",
        lambda tmp, run: train_on(
            tiny(tmp, lambda f: repickle(f / "data_batch_2", lambda e: e.update(data=e["data"][:, :3000])))
        ),
        ("data_batch_2 is not a CIFAR-10 batch (its data has shape (20, 3000), not (images, 3072)",),
    ),
    Case(
        "a label outside the classes",
        lambda tmp, run: train_on(
            tiny(tmp, lambda f: repickle(f / "test_batch", lambda e: e["labels"].__setitem__(5, 10)))
        ),
        ("test_batch is not a CIFAR-10 batch (label 10 is not a class index in [0, 10))",),
    ),
    Case(
        "`batches.meta` without `label_names`",
        lambda tmp, run: train_on(tiny(tmp, lambda f: (f / "batches.meta").write_bytes(pickle.dumps({"num_vis": 1})))),
        ("batches.meta holds no list of class names under 'label_names'",),
    ),
    Case(
        "a copy whose checksums differ",
        lambda tmp, run: train_on(tiny(tmp), "data.verify_checksums=true"),
        ("does not match the official CIFAR-10 checksum; if it is a custom copy, set data.verify_checksums=false",),
    ),
    Case(
        "a FIFO named `x.png` among the character images",
        lambda tmp, run: train_chars_on(with_fifo(chars(tmp) / "train" / "upper_A").parents[1]),
        ("upper_A/x.png is not a regular file", "move it out of the data"),
    ),
    Case(
        "`data.image_size` too small for the model",
        lambda tmp, run: train_chars_on(chars(tmp), "data.image_size=2", "model=week11_cnn"),
        ("the model cannot take data.image_size=2", "raise data.image_size or pick another model"),
    ),
    # evaluate and predict
    Case(
        "evaluate on data with other classes",
        lambda tmp, run: (
            "lit_cifar.evaluate",
            [ckpt(run), f"data.root={tiny(tmp, lambda f: repickle(f / 'batches.meta', rename_classes))}"],
        ),
        ("was trained on the classes ['airplane'", "letter_a", "point data.root"),
    ),
    Case(
        "`evaluate data.batch_size=0`",
        lambda tmp, run: ("lit_cifar.evaluate", [ckpt(run), "data.batch_size=0"]),
        ("data.batch_size=0 must be a positive integer",),
    ),
    Case(
        "a checkpoint that does not exist",
        lambda tmp, run: ("lit_cifar.evaluate", [f"ckpt_path={tmp / 'nope.ckpt'}"]),
        ("nope.ckpt does not exist", "pass ckpt_path="),
    ),
    Case(
        "a folder that is not a finished run",
        lambda tmp, run: ("lit_cifar.evaluate", [f"ckpt_path={tmp}"]),
        ("is not the folder of a finished run (its metrics.json names no tested checkpoint)", "pass a finished run"),
    ),
    Case(
        "predict with no checkpoint",
        lambda tmp, run: ("lit_cifar.predict", [f"images={pixel_png(tmp)}"]),
        ("pass the run to predict with: ckpt_path=outputs/DATE/TIME (its folder) or a .ckpt file",),
    ),
    Case(
        "a file that is not a checkpoint",
        lambda tmp, run: ("lit_cifar.predict", [f"ckpt_path={pixel_png(tmp)}", f"images={pixel_png(tmp)}"]),
        ("image.png is not a readable checkpoint",),
    ),
    Case(
        "`evaluate device=cuda` without a GPU",
        lambda tmp, run: ("lit_cifar.evaluate", [ckpt(run), "device=cuda"]),
        ("device=cuda but this machine has 0 CUDA GPU(s); use device=auto or device=cpu",),
    ),
    Case(
        "an image that is not an image",
        lambda tmp, run: ("lit_cifar.predict", [ckpt(run), f"images=[{pixel_png(tmp)},{text_png(tmp)}]"]),
        ("bad.png is not an image", "remove it from images="),
    ),
    Case(
        "a FIFO passed to predict",
        lambda tmp, run: ("lit_cifar.predict", [ckpt(run), f"images={with_fifo(tmp) / 'x.png'}"]),
        ("x.png is not a regular file",),
    ),
    Case(
        "predict test images not named by a range",
        lambda tmp, run: ("lit_cifar.predict", [ckpt(run), "images=test:abc"]),
        ("images=test:abc names no test images", "e.g. images=test:0-9"),
    ),
    Case(
        "a range that runs backwards",
        lambda tmp, run: ("lit_cifar.predict", [ckpt(run), "images=test:5-2"]),
        ("images=test:5-2 runs backwards", "e.g. images=test:2-5"),
    ),
    Case(
        "a range past the test split",
        lambda tmp, run: ("lit_cifar.predict", [ckpt(run), "images=test:35-40"]),
        ("images=test:35-40 reaches past the test split, which holds 40 images (test:0-39)",),
    ),
    Case(
        "another split than test",
        lambda tmp, run: ("lit_cifar.predict", [ckpt(run), "images=train:0-9"]),
        ("images=train:0-9 names the train split; predict reads the test split only",),
    ),
    Case(
        "an index without its split",
        lambda tmp, run: ("lit_cifar.predict", [ckpt(run), "images=3"]),
        ("images=3 is no file; for test images by index, name the split, e.g. images=test:3",),
    ),
    Case(
        "test images whose data moved",
        lambda tmp, run: ("lit_cifar.predict", [ckpt(run), "images=test:0", f"data.root={tmp / 'moved'}"]),
        ("CIFAR-10 not found in", "predict never downloads: point data.root at the data"),
    ),
]


def rename_classes(meta: dict) -> None:
    meta["label_names"] = [f"letter_{c}" for c in "abcdefghij"]


def text_png(tmp: Path) -> Path:
    (tmp / "bad.png").write_text("a text file with an image's name")
    return tmp / "bad.png"


@pytest.mark.parametrize("case", CASES, ids=[case.input for case in CASES])
def test_each_bad_input_is_one_line_and_changes_nothing(untouched, tmp_path, monkeypatch, case):
    if "without a GPU" in case.input and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # no network, whatever the machine has
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))  # for DiskFull
    module, args = case.command(tmp_path, untouched)
    if module != "lit_cifar.predict" and not any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in args):
        args.append(f"hydra.run.dir={tmp_path / 'run'}")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = snapshot(tmp_path, outside=tmp_path / "run")
    result = run_cli(module, *args, cwd=cwd)
    assert_one_line_error(result, *case.fragments)
    assert snapshot(tmp_path, outside=tmp_path / "run") == before
    assert not (tmp_path / "run" / "checkpoints").exists()


def readme_table_inputs() -> list[str]:
    """The first column of the table of bad inputs in docs/errors.md (the README links it)."""
    text = (REPO / "docs" / "errors.md").read_text()
    table = text.split("\n| input | message |\n", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    return [row.split(" | ")[0].removeprefix("| ") for row in rows]


def test_the_readme_table_lists_exactly_these_cases():
    assert readme_table_inputs() == [case.input for case in CASES]


@pytest.mark.parametrize(("step_size", "warned"), [(10, True), (20, True), (5, False)])
def test_a_step_schedule_that_never_steps_is_warned(caplog, step_size, warned):
    cfg = OmegaConf.create(
        {
            "scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": step_size, "gamma": 0.5},
            "trainer": {"max_epochs": 10},
            "module": {"scheduler_interval": "epoch"},
        }
    )
    with caplog.at_level("WARNING"):
        warn_idle_settings(cfg)
    assert ("the lr never changes, so scheduler.gamma does nothing" in caplog.text) == warned


def test_disk_and_permission_errors_name_the_file():
    full = OSError(28, "No space left on device", "/runs/x/checkpoints/last.ckpt")
    assert user_message(full).startswith("no space left on the device holding /runs/x/checkpoints/last.ckpt")
    denied = OSError(13, "Permission denied", "/data/outputs")
    assert user_message(denied).startswith("cannot write /data/outputs (Permission denied); pick a folder")
    assert user_message(OSError(2, "No such file or directory", "/x")) is None  # a bug's, with its traceback


def test_weights_of_another_shape_do_not_fit(tmp_path):
    ckpt = {
        "state_dict": {"net.weight": torch.zeros(5, 3), "net.bias": torch.zeros(5)},
        "run_config": {"model": {"_target_": "x.Net"}, "data": {"_target_": "x.Data"}},
    }
    check_fits(nn.Linear(3, 5), ckpt, "a.ckpt", prefix="net.")
    with pytest.raises(UserError, match="a.ckpt holds model Net on Data, whose weights do not fit"):
        check_fits(nn.Linear(3, 10), ckpt, "a.ckpt", prefix="net.")


def test_multirun_refuses_a_swept_device_count_in_each_job(untouched, tmp_path):
    result = run_cli(
        "lit_cifar.train",
        "-m",
        *tiny_cifar_overrides(untouched.parent / "data"),
        "trainer.devices=2,3",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode != 0
    job = json.loads((tmp_path / "trainer.devices=2" / "metrics.json").read_text())
    assert job["status"] == "failed" and "a multirun cannot train on several devices" in job["reason"]
    assert not (tmp_path / "trainer.devices=2" / "checkpoints").exists()


def test_a_nan_loss_stops_training_naming_its_step():
    check, trainer = FiniteLossCheck(), SimpleNamespace(log_every_n_steps=4, current_epoch=1)
    for step, loss in enumerate([1.0, float("nan"), 2.0], start=1):  # read on the host only every 4 steps
        trainer.global_step = step
        check.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, step)
    trainer.global_step = 4
    with pytest.raises(
        NonFiniteLossError,
        match=r"NaN or infinite at step 2 \(epoch 2; checked every "
        r"trainer.log_every_n_steps=4 steps\); lower optim.lr",
    ):
        check.on_train_batch_end(trainer, None, {"loss": torch.tensor(float("inf"))}, None, 4)


def test_a_finite_loss_trains_on_to_the_end_of_the_epoch():
    check, trainer = FiniteLossCheck(), SimpleNamespace(log_every_n_steps=1, current_epoch=0, global_step=1)
    check.on_train_batch_end(trainer, None, {"loss": torch.tensor(0.5)}, None, 0)
    check.on_train_epoch_end(trainer, None)
