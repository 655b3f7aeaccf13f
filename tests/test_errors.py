"""Each bad input: a one-line `error:` naming the problem and the fix, a non-zero exit, and no earlier run
dir, checkpoint or dataset changed."""

import hashlib
import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import run_cli, tiny_cifar_overrides, write_cifar
from PIL import Image
from torch import nn
from torchvision.datasets import CIFAR10

from lit_cifar.callbacks.finite_loss import FiniteLossCheck, NonFiniteLossError
from lit_cifar.checkpoints import check_fits
from lit_cifar.errors import UserError


def snapshot(*folders: Path) -> dict[Path, tuple[int, str]]:
    """Every file under `folders` with its mtime and content hash."""
    return {
        path: (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file()
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


def train(root: Path, run_dir: Path, *args: str):
    return run_cli(
        "lit_cifar.train", *tiny_cifar_overrides(root), "trainer.max_epochs=1", f"hydra.run.dir={run_dir}", *args
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["data.batch_size=0"], ["data.batch_size=0 must be a positive integer"]),
        (["optim.lr=-0.1"], ["optim.lr=-0.1 must be positive"]),
        (["data.batch_size=abc"], ["cannot build data", "check the names and the types"]),
        (["+trainer.bogus=1"], ["cannot build trainer", "bogus"]),
        (["seed=abc"], ["seed=abc must be an integer"]),
        (["trainer.accelerator=gpu", "trainer.devices=64"], ["CUDA GPU(s)", "trainer=cpu"]),
    ],
)
def test_bad_config_values(untouched, tmp_path, args, fragments):
    result = train(untouched.parent / "data", tmp_path / "run", *args)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("module", "args", "fragments"),
    [
        ("lit_cifar.train", ["data.bogus=1"], ["Could not override 'data.bogus'", "use +data.bogus=1"]),
        ("lit_cifar.train", ["model=nope"], ["Could not find 'model/nope'", "options in 'model': challenge_cnn_bn"]),
        ("lit_cifar.train", ["optim.lr=["], ["optim.lr=[", "override_grammar"]),
        ("lit_cifar.evaluate", ["bogus=1"], ["Could not override 'bogus'"]),
    ],
)
def test_unknown_keys_and_options_are_refused_before_anything_runs(untouched, tmp_path, module, args, fragments):
    # Hydra refuses these while composing the config; its several-line message is folded into one line.
    result = run_cli(module, *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_missing_dataset_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # no network, whatever the machine has
    result = run_cli(
        "lit_cifar.train",
        *tiny_cifar_overrides(tmp_path / "empty"),
        "data.download=true",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert_one_line_error(result, "could not download CIFAR-10", "copy the 'cifar-10-batches-py' folder")


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_missing_or_corrupt_dataset_file(tmp_path, damage):
    root = write_cifar(tmp_path / "data")
    batch = root / CIFAR10.base_folder / "data_batch_3"
    if damage == "delete":
        batch.unlink()
    else:
        batch.write_bytes(b"\x80\x04 truncated")
    before = snapshot(root)
    result = train(root, tmp_path / "run")
    assert_one_line_error(result, str(batch), "missing" if damage == "delete" else "not a readable CIFAR-10 file")
    assert snapshot(root) == before


def test_resuming_with_a_checkpoint_of_another_model(untouched, tmp_path):
    ckpt = untouched / "checkpoints" / "last.ckpt"
    result = train(untouched.parent / "data", tmp_path / "run", "model=resnet_lite", f"ckpt_path={ckpt}")
    assert_one_line_error(result, "holds model Week11CNN on CIFAR10DataModule", "configures model ResNetLite")


def test_weights_of_another_shape_do_not_fit(tmp_path):
    ckpt = {
        "state_dict": {"net.weight": torch.zeros(5, 3), "net.bias": torch.zeros(5)},
        "run_config": {"model": {"_target_": "x.Net"}, "data": {"_target_": "x.Data"}},
    }
    check_fits(nn.Linear(3, 5), ckpt, "a.ckpt", prefix="net.")
    with pytest.raises(UserError, match="a.ckpt holds model Net on Data, whose weights do not fit"):
        check_fits(nn.Linear(3, 10), ckpt, "a.ckpt", prefix="net.")


def test_evaluating_on_a_dataset_with_other_classes(untouched, tmp_path):
    other = write_cifar(tmp_path / "other")
    meta = other / CIFAR10.base_folder / "batches.meta"
    meta.write_bytes(pickle.dumps({"label_names": [f"letter_{c}" for c in "abcdefghij"]}))
    result = run_cli(
        "lit_cifar.evaluate",
        f"ckpt_path={untouched / 'checkpoints' / 'last.ckpt'}",
        f"data.root={other}",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert_one_line_error(result, "was trained on the classes ['airplane'", "letter_a", "point data.root")


@pytest.mark.parametrize("module", ["lit_cifar.evaluate", "lit_cifar.predict"])
def test_checkpoint_that_does_not_exist_or_is_not_one(tmp_path, module):
    image = tmp_path / "image.png"
    Image.new("RGB", (32, 32)).save(image)
    args = [f"images={image}"] if module == "lit_cifar.predict" else [f"hydra.run.dir={tmp_path / 'eval'}"]
    missing = tmp_path / "nope.ckpt"
    result = run_cli(module, f"ckpt_path={missing}", *args, cwd=tmp_path)
    assert_one_line_error(result, f"checkpoint {missing} does not exist", "pass ckpt_path=")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    result = run_cli(module, f"ckpt_path={garbage}", *args, cwd=tmp_path)
    assert_one_line_error(result, f"{garbage} is not a readable checkpoint")


def test_an_image_that_is_not_an_image(untouched, tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (32, 32)).save(good)
    bad.write_text("a text file with an image's name")
    result = run_cli(
        "lit_cifar.predict",
        f"ckpt_path={untouched / 'checkpoints' / 'last.ckpt'}",
        f"images=[{good},{bad}]",
        cwd=tmp_path,
    )
    assert_one_line_error(result, f"{bad} is not an image", "remove it from images=")


def test_multirun_refuses_ddp_before_any_job_starts(untouched, tmp_path):
    args = ["-m", *tiny_cifar_overrides(untouched.parent / "data"), f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_cli("lit_cifar.train", *args, "+trainer.strategy=ddp")
    assert_one_line_error(result, "a multirun cannot train on several devices", "trainer.devices=1")
    assert not (tmp_path / "sweep").exists()


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
        match=r"NaN or infinite at step 2 \(epoch 1; checked every "
        r"trainer.log_every_n_steps=4 steps\); lower optim.lr",
    ):
        check.on_train_batch_end(trainer, None, {"loss": torch.tensor(float("inf"))}, None, 4)


def test_a_finite_loss_trains_on_to_the_end_of_the_epoch():
    check, trainer = FiniteLossCheck(), SimpleNamespace(log_every_n_steps=1, current_epoch=0, global_step=1)
    check.on_train_batch_end(trainer, None, {"loss": torch.tensor(0.5)}, None, 0)
    check.on_train_epoch_end(trainer, None)
