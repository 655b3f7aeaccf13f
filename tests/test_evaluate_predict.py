"""A checkpoint handed on: evaluate it on its test split, and classify image files with it."""

import json
import pickle
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, run_cli, tiny_cifar_overrides
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.datasets import CIFAR10


def test_evaluate_reports_accuracy_per_class_and_a_confusion_matrix_next_to_the_run(trained_run, tmp_path):
    run = tmp_path / "run"  # a copy: the trained run is shared with other tests
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(trained_run / "checkpoints" / "last.ckpt", run / "checkpoints")
    result = run_cli("lit_cifar.evaluate", "ckpt_path=run/checkpoints/last.ckpt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (evaluated,) = (run / "evaluate").iterdir()  # outputs/DATE/TIME/evaluate/DATE_TIME/
    assert f"TensorBoard logs in {evaluated}\n" in result.stdout
    evaluation = json.loads((evaluated / "evaluation.json").read_text())
    # One epoch: last.ckpt is the best checkpoint, which the training itself tested.
    trained = json.loads((trained_run / "metrics.json").read_text())["metrics"]
    assert abs(evaluation["accuracy"] - trained["test/acc"]) < 1e-6
    assert evaluation["test_images"] == 40
    assert list(evaluation["per_class_accuracy"]) == CLASSES
    matrix = np.array(evaluation["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 40
    assert np.trace(matrix) / 40 == evaluation["accuracy"]
    with Image.open(evaluated / "confusion_matrix.png") as png:
        assert 600 < png.size[0] < 1400
    events = EventAccumulator(str(evaluated / "tensorboard"))
    events.Reload()
    assert "test/confusion_matrix" in events.Tags()["images"]
    assert {"test/acc", "test/acc_per_class/cat"} <= set(events.Tags()["scalars"])


def test_a_run_folder_is_evaluated_and_predicted_with_the_checkpoint_its_test_used(trained_run, tmp_path):
    """Wherever the folder has moved since: the record names the checkpoint, the folder holds it."""
    run = tmp_path / "moved"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("evaluate"))
    tested = json.loads((run / "metrics.json").read_text())["tested_checkpoint"]
    assert not tested.startswith(str(run))

    evaluated = run_cli("lit_cifar.evaluate", "ckpt_path=moved", cwd=tmp_path)
    predicted = run_cli(
        "lit_cifar.predict", "ckpt_path=moved", f"images={png_of_a_test_image(trained_run, tmp_path)}", cwd=tmp_path
    )

    assert evaluated.returncode == 0, evaluated.stderr
    (folder,) = (run / "evaluate").iterdir()
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert evaluation["checkpoint"] == str(run / "checkpoints" / Path(tested).name)
    trained = json.loads((run / "metrics.json").read_text())["metrics"]
    assert abs(evaluation["accuracy"] - trained["test/acc"]) < 1e-6
    assert predicted.returncode == 0, predicted.stderr
    assert re.search(r"image\.png: \w+ [\d.]+, \w+ [\d.]+, \w+ [\d.]+$", predicted.stdout.strip())


def png_of_a_test_image(trained_run: Path, folder: Path) -> Path:
    with open(trained_run.parent / "data" / CIFAR10.base_folder / "test_batch", "rb") as f:
        image = pickle.load(f)["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    Image.fromarray(image).save(folder / "image.png")
    return folder / "image.png"


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


@pytest.mark.slow
def test_evaluate_scores_a_batched_tta_run_as_its_own_test_did(cifar_root, tmp_path):
    # fast94: test batches cut from device tensors, the last one padded (40 images, batch 16), and six-view TTA
    run = tmp_path / "run"
    trained = run_cli(
        "lit_cifar.train",
        "experiment=fast94",
        *tiny_cifar_overrides(cifar_root),
        "data.val_size=0",
        "trainer.max_epochs=2",
        "model.widths=[8,16,16]",
        f"hydra.run.dir={run}",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = run_cli("lit_cifar.evaluate", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (evaluated,) = (run / "evaluate").iterdir()
    evaluation = json.loads((evaluated / "evaluation.json").read_text())
    assert evaluation["test_images"] == 40
    test_acc = json.loads((run / "metrics.json").read_text())["metrics"]["test/acc"]
    assert evaluation["accuracy"] == pytest.approx(test_acc, abs=1e-6)


def test_the_quotes_suggested_for_a_sweep_jobs_folder_work_when_pasted_into_a_shell(tmp_path):
    job = tmp_path / "sweep" / "optim.lr=0.001"
    refused = run_cli("lit_cifar.evaluate", f"ckpt_path={job}")
    assert refused.returncode == 2 and "cannot parse the override" in refused.stderr
    pasted = shlex.split(refused.stderr.strip().rsplit("needs quotes that reach Hydra: ", 1)[1])
    again = run_cli("lit_cifar.evaluate", *pasted)
    assert again.returncode == 2 and "cannot parse" not in again.stderr and str(job) in again.stderr
