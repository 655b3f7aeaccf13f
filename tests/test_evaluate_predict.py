"""A checkpoint handed on: evaluate it on its test split, and classify image files with it."""

import json
import pickle
import re

import numpy as np
from conftest import CLASSES, run_cli
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.datasets import CIFAR10


def test_evaluate_reports_accuracy_per_class_and_a_confusion_matrix(trained_run, tmp_path):
    result = run_cli(
        "lit_cifar.evaluate", f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    # One epoch: last.ckpt is the best checkpoint, which the training itself tested.
    trained = json.loads((trained_run / "metrics.json").read_text())["metrics"]
    assert abs(evaluation["accuracy"] - trained["test/acc"]) < 1e-6
    assert evaluation["test_images"] == 40
    assert list(evaluation["per_class_accuracy"]) == CLASSES
    matrix = np.array(evaluation["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 40
    assert np.trace(matrix) / 40 == evaluation["accuracy"]
    with Image.open(tmp_path / "confusion_matrix.png") as png:
        assert png.size[0] > 300
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert "test/confusion_matrix" in events.Tags()["images"]
    assert {"test/acc", "test/acc_per_class/cat"} <= set(events.Tags()["scalars"])


def test_predict_prints_top_k_classes_of_image_files_as_evaluate_scores_them(trained_run, tmp_path):
    with open(trained_run.parent / "data" / CIFAR10.base_folder / "test_batch", "rb") as f:
        test_batch = pickle.load(f)
    images = test_batch["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    (folder / "notes.txt").write_text("not an image, and not an image suffix: skipped in a folder")

    result = run_cli(
        "lit_cifar.predict",
        f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
        f"images={folder}",
        "top_k=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(folder))]
    assert len(lines) == len(images)
    top1 = []
    for i, line in enumerate(lines):
        match = re.fullmatch(rf"{folder}/{i:02d}\.png: (\w+) ([\d.]+), (\w+) ([\d.]+)", line)
        assert match, line
        first, p_first, second, p_second = match.groups()
        assert {first, second} <= set(CLASSES) and first != second
        assert 1 >= float(p_first) >= float(p_second) > 0
        top1.append(CLASSES.index(first))
    # The checkpoint's normalization and class names: PNGs of the test images score as the training's test did.
    trained = json.loads((trained_run / "metrics.json").read_text())["metrics"]
    assert abs(np.mean(np.array(top1) == np.array(test_batch["labels"])) - trained["test/acc"]) < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # predict writes nothing
