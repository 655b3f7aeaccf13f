"""The defects found where two parts of the code kept their own copy of one fact (issue 22), one test per class:
an extension killed before its first new epoch, a checkpoint file started from in a new folder, a loss
optimized by a search, a boolean given a word, a copied run dir, smoke runs, a sweep into a run dir, a trial
pruned at its last epoch, and bad input that ended in a traceback or a contradiction.

Each goes through the command a user types, except where the fact lives in one object (the pruning callback,
the manifest reader)."""

import json
import math
import pickle
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import CLASSES, file_hashes, killed_at, run_cli, tiny_cifar_overrides, write_cifar
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

STEPS_PER_EPOCH = 5  # 80 training images in batches of 16 (tiny_cifar_overrides)
TESTS = Path(__file__).parent


def train(root: Path, run_dir: Path, *extra: str):
    args = [*tiny_cifar_overrides(root), "model=week11_cnn", "seed=7", "trainer.deterministic=true"]
    return run_cli("lit_cifar.train", *args, "trainer.log_every_n_steps=1", f"hydra.run.dir={run_dir}", *extra)


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def lr_by_step(run_dir: Path) -> dict[int, float]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {event.step: event.value for event in events.Scalars("lr-Adam")}


def cosine(epoch: int, epochs: int, lr: float = 1e-3) -> float:
    return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2


def assert_lr_in_epochs(run_dir: Path, epochs: range, total: int) -> None:
    lr = lr_by_step(run_dir)
    for epoch in epochs:
        steps = range(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)
        assert [lr[s] for s in steps] == pytest.approx([cosine(epoch, total)] * STEPS_PER_EPOCH, rel=1e-5), epoch


@pytest.mark.slow
def test_an_extension_killed_in_its_first_new_epoch_resumes_on_the_new_schedule(cifar_root, tmp_path, monkeypatch):
    # 1. The extension's own record says 4 epochs, but its only checkpoint is the 2-epoch run's: the resume must
    # re-plan from what that checkpoint was planned for, not from what metrics.json says.
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    run_dir = tmp_path / "run"
    kill = killed_at(2 * STEPS_PER_EPOCH + 2, signal.SIGKILL, once=tmp_path / "once")  # in the third epoch
    assert train(cifar_root, run_dir, "trainer.max_epochs=2", *kill).returncode == 0  # a resume keeps its callbacks
    extend = ("trainer.max_epochs=4", "ckpt_path=last", *kill)
    assert train(cifar_root, run_dir, *extend).returncode == -signal.SIGKILL
    resumed = train(cifar_root, run_dir, *extend)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_lr_in_epochs(run_dir, range(2, 4), total=4)  # was 0 in epoch 3 and 5e-4 in epoch 4 (the cosine wrapped)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["lr_schedulers"][0]["T_max"] == 4


@pytest.mark.slow
def test_a_checkpoint_file_started_from_in_a_new_folder_is_held_to_the_resume_rule(cifar_root, tmp_path):
    # 2. ckpt_path=<file> is exact or refused, like ckpt_path=last, and the record names where it came from.
    source = tmp_path / "source"
    assert train(cifar_root, source, "trainer.max_epochs=1").returncode == 0
    ckpt = source / "checkpoints" / "last.ckpt"
    other = train(cifar_root, tmp_path / "other", "trainer.max_epochs=2", f"ckpt_path={ckpt}", "optim.lr=0.05")
    line = one_error_line(other)
    assert f"{ckpt} holds a run trained with other settings" in line and "optim.lr: 0.001 -> 0.05" in line
    assert not (tmp_path / "other").exists()

    longer = train(cifar_root, tmp_path / "longer", "trainer.max_epochs=2", f"ckpt_path={ckpt}")
    assert longer.returncode == 0, longer.stderr[-3000:]
    got = record(tmp_path / "longer")
    assert (got["start"], got["source_checkpoint"]) == ("from_checkpoint", str(ckpt.resolve()))
    assert_lr_in_epochs(tmp_path / "longer", range(1, 2), total=2)  # re-planned: was the 1-epoch cosine's 0


@pytest.mark.slow
def test_a_search_that_minimizes_a_loss_names_the_trial_with_the_lowest_loss(cifar_root, tmp_path):
    # 3. A metric's direction is known in one place: the study minimizes a loss and its `best:` is the lowest.
    sweep_dir = tmp_path / "search"
    args = [*tiny_cifar_overrides(cifar_root), "model=week11_cnn", "trainer.max_epochs=2", "optimized_metric=val/loss"]
    search = ["-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid", "hydra/sweeper/pruner=none"]
    result = run_cli(
        "lit_cifar.train", *search, *args, "optim.lr=choice(1e-9,3e-3)", "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    losses = {p.parent.name: record(p.parent)["metrics"]["val/loss"] for p in sweep_dir.glob("trial-*/metrics.json")}
    assert len(losses) == 2 and len(set(losses.values())) == 2
    (best,) = [line for line in result.stdout.splitlines() if line.startswith("best: ")]
    assert best.startswith(f"best: {min(losses, key=losses.get)}, val/loss=")

    contrary = run_cli(
        "lit_cifar.train", *search, *args, "optim.lr=choice(1e-9,3e-3)", "hydra.sweeper.direction=maximize",
        f"hydra.sweep.dir={tmp_path / 'contrary'}",
    )  # fmt: skip
    assert "hydra.sweeper.direction=maximize contradicts optimized_metric=val/loss" in one_error_line(contrary)


@pytest.mark.parametrize("override", ["data.hflip=no", "module.tta=maybe", "data.download=yes", "trainer.benchmark=1"])
def test_a_boolean_key_takes_only_true_or_false(cifar_root, tmp_path, override):
    # 4. `no` was true: a key's type is declared once and a start refuses a value of another type.
    key = override.split("=")[0]
    line = one_error_line(train(cifar_root, tmp_path / "run", override))
    assert line.startswith(f"error: {key}=") and "must be true or false" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_copied_run_dir_resumes_from_its_newest_checkpoint(cifar_root, tmp_path, monkeypatch):
    # 5. In a copy, Lightning names the extension's checkpoints last-v1.ckpt beside the copied last.ckpt: a resume
    # goes on from the checkpoint that trained furthest, whatever its name.
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    run_dir, copy, whole = tmp_path / "run", tmp_path / "copy", tmp_path / "whole"
    kill = killed_at(3 * STEPS_PER_EPOCH + 2, signal.SIGKILL, once=tmp_path / "once")  # in the fourth epoch
    assert train(cifar_root, run_dir, "trainer.max_epochs=2", *kill).returncode == 0
    shutil.copytree(run_dir, copy)
    shutil.copytree(run_dir, whole)
    extend = ("trainer.max_epochs=4", "ckpt_path=last", *kill)
    assert train(cifar_root, copy, *extend).returncode == -signal.SIGKILL
    assert sorted(p.name for p in (copy / "checkpoints").glob("last*")) == ["last-v1.ckpt", "last.ckpt"]
    resumed = train(cifar_root, copy, *extend)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert train(cifar_root, whole, *extend).returncode == 0  # the same extension, not killed (`once` is spent)
    expected, got = record(whole)["metrics"], record(copy)["metrics"]
    for name in ("train/loss", "val/loss", "test/acc", "test/loss"):
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name


@pytest.mark.slow
@pytest.mark.parametrize("smoke", ["trainer.fast_dev_run=true", "trainer.limit_train_batches=0"])
def test_smoke_runs_are_recorded_as_such_and_never_ranked(cifar_root, tmp_path, smoke):
    # 6. A run that trained one batch, or none, shows that the code runs; it is no result.
    run_dir = tmp_path / "run"
    result = train(cifar_root, run_dir, "trainer.max_epochs=1", smoke)
    assert result.returncode == 0, result.stderr[-3000:]
    got = record(run_dir)
    assert got["status"] == "smoke" and got["tested_checkpoint"] == "" and got["best_checkpoint"] == ""
    table = run_cli("lit_cifar.report", str(run_dir))
    assert table.returncode == 0, table.stderr[-3000:]
    assert " smoke " in table.stdout and " ok " not in table.stdout


def test_a_sweep_into_a_single_run_dir_is_refused_and_the_run_kept(cifar_root, tmp_path):
    # 7. The run's result would vanish from the report, and the sweep's jobs would mix into the run's folder.
    run_dir = tmp_path / "run"
    assert train(cifar_root, run_dir, "trainer.fast_dev_run=true").returncode == 0
    before = file_hashes(run_dir)
    sweep = run_cli("lit_cifar.train", "-m", *tiny_cifar_overrides(cifar_root), "optim.lr=1e-3,2e-3",
                    "trainer.fast_dev_run=true", f"hydra.sweep.dir={run_dir}")  # fmt: skip
    assert f"{run_dir} holds a single run, not a sweep" in one_error_line(sweep)
    assert file_hashes(run_dir) == before


@pytest.mark.parametrize(("epoch", "pruned"), [(1, True), (2, True), (3, False)])
def test_a_trial_is_never_pruned_at_its_last_epoch(epoch, pruned):
    # 8. Stopping at the last epoch saves no work and left a trial without its test: it completes instead.
    from lit_cifar.run.record import RunPruned
    from lit_cifar.sweep.pruning import TrialReport

    reported = []
    trial = SimpleNamespace(report=lambda value, step: reported.append((value, step)), should_prune=lambda: True)
    trainer = SimpleNamespace(
        sanity_checking=False, callback_metrics={"val/acc": torch.tensor(0.5)}, current_epoch=epoch - 1, max_epochs=3
    )
    callback = TrialReport(trial, "val/acc")
    module = SimpleNamespace(best_val_acc=lambda: 0.5)
    if pruned:
        with pytest.raises(RunPruned):
            callback.on_validation_end(trainer, module)
    else:
        callback.on_validation_end(trainer, module)
    assert reported == [(0.5, epoch)]


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("trainer.gradient_clip_val=-1", ("trainer.gradient_clip_val=-1 must be a gradient norm ≥ 0",)),
        ("optimized_metric=bogus", ("optimized_metric=bogus is not a metric a run reports", "val/acc_best")),
        ("data.split_seed=-1", ("data.split_seed=-1 must be an integer in [0, 4294967295]",)),
    ],
)
def test_bad_training_values_are_one_line(cifar_root, tmp_path, override, fragments):
    # 9. Silently accepted before: no clipping at -1, a metric no run reports, a seed the generator wraps around.
    line = one_error_line(train(cifar_root, tmp_path / "run", override))
    for fragment in fragments:
        assert fragment in line
    assert not (tmp_path / "run").exists()


def test_a_cifar_folder_with_other_than_ten_class_names_gets_advice_that_works(tmp_path):
    # 9. It was told to set data.num_classes=9, and then to remove that override.
    root = write_cifar(tmp_path / "data")
    meta = root / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({"label_names": CLASSES[:9], "num_vis": 3072}))
    line = one_error_line(train(root, tmp_path / "run"))
    assert f"{meta} names 9 classes, but CIFAR-10 has 10; replace it with a good copy" in line
    assert "data.num_classes" not in line


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = write_cifar(tmp_path_factory.mktemp("predict") / "data")
    run_dir = root.parent / "run"
    assert train(root, run_dir, "trainer.max_epochs=1").returncode == 0
    return run_dir / "checkpoints" / "last.ckpt"


def test_predict_refuses_a_top_k_that_is_no_number_in_one_line(checkpoint, tmp_path):
    # 9. It ended in a 40-line traceback.
    image = tmp_path / "cat.png"
    Image.new("RGB", (32, 32)).save(image)
    result = run_cli("lit_cifar.predict", f"ckpt_path={checkpoint}", f"images={image}", "top_k=abc")
    assert "top_k=abc must be a whole number of classes, 1 or more" in one_error_line(result)


@pytest.mark.slow
def test_predict_refuses_an_image_over_the_pixel_limit_in_one_line(checkpoint, tmp_path):
    # 9. PIL refuses to open more than twice its MAX_IMAGE_PIXELS (a decompression bomb): a 53-line traceback.
    image = tmp_path / "huge.png"
    side = math.isqrt(2 * Image.MAX_IMAGE_PIXELS) + 8
    Image.new("1", (side, side)).save(image)
    result = run_cli("lit_cifar.predict", f"ckpt_path={checkpoint}", f"images={image}")
    assert f"{image} is not an image that can be read (DecompressionBombError)" in one_error_line(result)


def test_a_character_manifest_saved_with_a_byte_order_mark_is_read(tmp_path):
    # 9. Spreadsheet programs save CSV as UTF-8 with a byte-order mark; it was quoted as part of the header.
    from lit_cifar.data.chars import csv_entries

    manifest = tmp_path / "train.csv"
    manifest.write_text("path,label\ntrain/upper_A/0.png,A\n", encoding="utf-8-sig")
    assert manifest.read_bytes().startswith(b"\xef\xbb\xbf")
    assert csv_entries(manifest) == [(tmp_path / "train/upper_A/0.png", "A")]
