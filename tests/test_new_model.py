"""A new model and a new dataset are one .py and one .yaml each, in a package of the user's own on Hydra's search
path: they train, evaluate and predict, and a value of the wrong type for the model's new argument is one line
before anything is built, with no other file touched (docs/development.md, "Adding a model, a dataset")."""

import sys
import textwrap

import pytest
from conftest import run_cli

MODEL = """
from typing import Annotated

from torch import nn

from lit_cifar.run.declared import Range


class TinyNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        hidden_units: Annotated[int, Range(1, ints=True, words="a positive number of units", example="8")] = 8,
    ) -> None:
        super().__init__()
        features = in_channels * image_size**2
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(features, hidden_units), nn.ReLU(), nn.Linear(hidden_units, num_classes)
        )

    def forward(self, images):
        return self.net(images)
"""
DATASET = '''
import torch

from lit_cifar.data.base import ImageDataModule, check_num_classes


class NoiseDataModule(ImageDataModule):
    """Random images whose class is their brightest channel, drawn from `noise_seed` (no files under `root`)."""

    def __init__(self, root: str = ".", noise_seed: int = 0, **kwargs) -> None:
        super().__init__(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], **kwargs)
        self.root, self.noise_seed = root, noise_seed

    def count_classes(self) -> int:
        return 3

    def load(self) -> dict:
        generator = torch.Generator().manual_seed(self.noise_seed)
        size = (96, 3, self.image_size, self.image_size)
        images = torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)
        labels = images.float().mean(dim=(2, 3)).argmax(1)
        self.class_names = ["red", "green", "blue"]
        self.num_classes = check_num_classes("the noise", len(self.class_names), self.num_classes)
        return {"train": (images[:64], labels[:64]), "test": (images[64:], labels[64:])}
'''
MODEL_YAML = """
_target_: usernets.tiny.TinyNet
in_channels: ${data.in_channels}
num_classes: ${data.num_classes}
image_size: ${data.image_size}
hidden_units: 8
"""
DATA_YAML = """
_target_: usernets.noise.NoiseDataModule
root: .
noise_seed: 0
num_classes: 3
in_channels: 3
image_size: 8
val_size: 16
batch_size: 16
num_workers: 0
translate: 0
rotation: 0
hflip: false
"""


@pytest.fixture
def user_package(tmp_path, monkeypatch) -> list[str]:
    """The user's package and its configs; the overrides that put them on the paths."""
    package = tmp_path / "usernets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(textwrap.dedent(MODEL))
    (package / "noise.py").write_text(textwrap.dedent(DATASET))
    for group, text in (("model", MODEL_YAML), ("data", DATA_YAML)):
        (tmp_path / "conf" / group).mkdir(parents=True)
        (tmp_path / "conf" / group / f"tiny_{group}.yaml").write_text(text)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name.split(".")[0] == "usernets"]:  # an earlier test's package
        monkeypatch.delitem(sys.modules, name)
    return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_a_new_model_and_dataset_train_evaluate_and_predict(user_package, tmp_path):
    run = tmp_path / "run"
    train = run_cli(
        "lit_cifar.train", *user_package, "model=tiny_model", "data=tiny_data", "trainer=cpu", "trainer.max_epochs=1",
        "callbacks.progress_bar=null", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    assert (run / "metrics.json").is_file()
    # the checkpoint alone never chooses code: without the user's config folder on the path, its model is refused
    refused = run_cli("lit_cifar.evaluate", f"ckpt_path={run}")
    assert refused.returncode == 2 and "sets model._target_ to usernets.tiny.TinyNet" in error_lines(refused)[0]
    evaluate = run_cli("lit_cifar.evaluate", *user_package, f"ckpt_path={run}")
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert list(run.glob("evaluate/*/evaluation.json"))
    predict = run_cli("lit_cifar.predict", *user_package, f"ckpt_path={run}", "images=test:0-2", "top_k=1")
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert "test:0 (true " in predict.stdout


def test_a_wrong_type_for_the_new_argument_is_one_line(user_package, tmp_path):
    result = run_cli(
        "lit_cifar.train", *user_package, "model=tiny_model", "data=tiny_data", "model.hidden_units=abc",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert error_lines(result) == [
        "error: model.hidden_units=abc must be a positive number of units, e.g. model.hidden_units=8"
    ]
    assert not (tmp_path / "run").exists()
    wrong_kind = run_cli(
        "lit_cifar.train", *user_package, "model=tiny_model", "data=tiny_data", "data.noise_seed=0.5",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert error_lines(wrong_kind) == [
        "error: data.noise_seed=0.5 must be a whole number; set it as such, e.g. data.noise_seed=0"
    ]
