"""`predict images=test:0-9`: sample images from the checkpoint's own test split, with their true class beside the
prediction, so the README's predict line runs on a fresh clone with nothing made by hand."""

import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, run_cli
from PIL import Image
from torchvision.datasets import CIFAR10

LINE = re.compile(r"test:(\d+) \(true (\w+)\): (\w+) ([\d.]+), (\w+) ([\d.]+)")


def cifar_test_batch(trained_run: Path) -> dict:
    with open(trained_run.parent / "data" / CIFAR10.base_folder / "test_batch", "rb") as f:
        return pickle.load(f)


def test_test_indices_predict_the_checkpoints_own_test_images_beside_their_true_class(trained_run, tmp_path):
    # from another folder than the run was trained in: the checkpoint's config finds its data
    result = run_cli("lit_cifar.predict", f"ckpt_path={trained_run}", "images=test:0-9", "top_k=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("test:")]  # the split's warnings aside
    assert len(lines) == 10
    labels = cifar_test_batch(trained_run)["labels"]
    for i, line in enumerate(lines):
        match = LINE.fullmatch(line)
        assert match, line
        index, true, first, p_first, second, p_second = match.groups()
        assert int(index) == i and true == CLASSES[labels[i]]
        assert {first, second} <= set(CLASSES) and 1 >= float(p_first) >= float(p_second) > 0
    assert list(tmp_path.iterdir()) == []  # predict writes nothing


def test_test_images_score_as_their_pngs_do(trained_run, tmp_path):
    """The same images, from the split or saved as PNG files, get the same classes and probabilities."""
    images = cifar_test_batch(trained_run)["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    for i in (3, 4):
        Image.fromarray(images[i]).save(tmp_path / f"{i}.png")
    result = run_cli(
        "lit_cifar.predict", f"ckpt_path={trained_run}", f"images=[{tmp_path / '3.png'},test:3-4,{tmp_path / '4.png'}]"
    )
    assert result.returncode == 0, result.stderr
    named = dict(line.split(": ", 1) for line in result.stdout.splitlines() if line.startswith(("test:", "/")))
    assert list(named)[0] == str(tmp_path / "3.png") and list(named)[-1] == str(
        tmp_path / "4.png"
    )  # in the order given
    (test_3,) = [name for name in named if name.startswith("test:3 ")]
    (test_4,) = [name for name in named if name.startswith("test:4 ")]
    assert named[test_3] == named[str(tmp_path / "3.png")] and named[test_4] == named[str(tmp_path / "4.png")]


def test_test_images_of_character_data_are_read_from_its_own_folders(tmp_path):
    """data=chars: the checkpoint's own class names and grayscale images, from where its data.root says."""
    chars = tmp_path / "chars"
    assert run_cli("lit_cifar.data.make_chars", f"--out={chars}", "--per-class=2", "--test-per-class=1").returncode == 0
    run = tmp_path / "run"
    trained = run_cli(
        "lit_cifar.train", "data=chars", f"data.root={chars}", "data.image_size=28", "data.num_workers=0",
        "data.batch_size=32", "model=week11_cnn", "trainer=cpu", "trainer.fast_dev_run=true",
        "callbacks.progress_bar=null", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = run_cli("lit_cifar.predict", f"ckpt_path={run}/checkpoints/last.ckpt", "images=test:0-2", "top_k=1")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("test:")]
    assert [line.split(" (true ")[0] for line in lines] == ["test:0", "test:1", "test:2"]
    assert all(re.fullmatch(r"test:\d \(true \w\): \w [\d.]+", line) for line in lines), lines


@pytest.mark.parametrize(
    ("images", "says"),
    [
        ("test:abc", "images=test:abc names no test images"),
        ("test:5-2", "images=test:5-2 runs backwards"),
        ("test:35-40", "images=test:35-40 reaches past the test split, which holds 40 images (test:0-39)"),
        ("train:0-9", "images=train:0-9 names the train split"),
        ("3", "images=3 is no file"),
        ("[test:0,test:x]", "images=test:x names no test images"),
    ],
)
def test_a_bad_test_spec_is_one_line_naming_images_and_an_example(trained_run, tmp_path, images, says):
    result = run_cli("lit_cifar.predict", f"ckpt_path={trained_run}", f"images={images}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {says}") and "e.g. images=test:" in line, line


def test_test_images_of_data_that_moved_are_found_with_data_root(trained_run, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(trained_run.parent / "data", moved)
    found = run_cli("lit_cifar.predict", f"ckpt_path={trained_run}", "images=test:0", f"data.root={moved}")
    assert found.returncode == 0, found.stderr
    missing = run_cli(
        "lit_cifar.predict", f"ckpt_path={trained_run}", "images=test:0", f"data.root={tmp_path / 'gone'}"
    )
    assert missing.returncode == 2
    (line,) = missing.stderr.strip().splitlines()
    assert "predict never downloads: point data.root at the data" in line, line


def test_the_test_split_is_read_only_for_test_images(trained_run, tmp_path):
    """Image files alone need no data set: a checkpoint predicts where its data is not."""
    image = np.zeros((32, 32, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "black.png")
    result = run_cli(
        "lit_cifar.predict", f"ckpt_path={trained_run}", f"images={tmp_path / 'black.png'}", "data.root=/nowhere"
    )
    assert result.returncode == 0, result.stderr
