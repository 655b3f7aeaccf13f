"""`debug=` presets (conf/debug/): a fast dev run, a few batches, overfitting a few batches, a profiled epoch. Each is
recorded as a smoke run naming its preset, which a table never ranks, and never goes on in a real run's folder."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import file_hashes, run_cli, tiny_cifar_overrides


def debug_run(preset: str, data: Path, run_dir: Path, *extra: str) -> dict:
    """metrics.json of `python -m lit_cifar.train debug=<preset>` on the tiny fixture, week11_cnn."""
    trained = run_cli(
        "lit_cifar.train",
        f"debug={preset}",
        *tiny_cifar_overrides(data),
        "model=week11_cnn",
        *extra,
        f"hydra.run.dir={run_dir}",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


def assert_smoke(record: dict, preset: str) -> None:
    assert record["status"] == "smoke"
    assert f"debug={preset}" in record["reason"]
    assert record["best_checkpoint"] == record["tested_checkpoint"] == ""  # never a result to test or hand on


def test_fdr_runs_one_batch_of_each_split(cifar_root, tmp_path):
    record = debug_run("fdr", cifar_root, tmp_path / "run")
    assert_smoke(record, "fdr")
    assert record["images"] == {"val": 16, "test": 16}  # one batch each


def test_limit_runs_a_few_batches_of_each_split_for_two_epochs(cifar_root, tmp_path):
    record = debug_run("limit", cifar_root, tmp_path / "run")
    assert_smoke(record, "limit")
    assert record["images"] == {"val": 20, "test": 32}  # 2 batches of 16; the val split holds 20 images
    resolved = yaml.safe_load((tmp_path / "run" / ".hydra" / "resolved.yaml").read_text())
    assert resolved["debug"] == "limit" and resolved["trainer"]["max_epochs"] == 2
    assert "epoch 2/2 " in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.slow
def test_overfit_learns_a_few_unaugmented_batches_by_heart(cifar_root, tmp_path):
    record = debug_run("overfit", cifar_root, tmp_path / "run", "optim.lr=3e-3", "trainer.max_epochs=10")
    assert_smoke(record, "overfit")
    assert record["metrics"]["train/acc"] > 0.9  # 3 fixed batches of 16, 10 epochs
    data = yaml.safe_load((tmp_path / "run" / ".hydra" / "resolved.yaml").read_text())["data"]
    assert (data["rotation"], data["translate"], data["hflip"], data["pipeline"]) == (0, 0, False, "loader")


def test_profiler_writes_its_report_into_the_run_folder(cifar_root, tmp_path):
    record = debug_run("profiler", cifar_root, tmp_path / "run", "trainer.limit_train_batches=2")
    assert_smoke(record, "profiler")
    reports = {p.name: p.read_text() for p in (tmp_path / "run" / "profiler").iterdir()}
    assert sorted(reports) == ["fit-report.txt", "test-report.txt"]
    assert "run_training_batch" in reports["fit-report.txt"]


def test_a_debug_run_is_never_ranked_among_results(cifar_root, tmp_path, trained_run):
    debug_run("fdr", cifar_root, tmp_path / "runs" / "debug")
    shutil.copytree(trained_run, tmp_path / "runs" / "real")
    table = run_cli("lit_cifar.report", str(tmp_path / "runs" / "*"), "--out", str(tmp_path / "table"))
    assert table.returncode == 0, table.stderr
    rows = (tmp_path / "table" / "results.csv").read_text().splitlines()
    (debug_row,) = [row for row in rows if "/debug" in row]
    assert ",smoke," in debug_row and "debug=fdr" in debug_row
    best = table.stdout.split("\nbest: ", 1)[1].splitlines()[0]
    assert "debug=(default)" in best and "debug=fdr" not in best


@pytest.mark.parametrize("preset", ["limit", "profiler"])
def test_a_debug_run_never_goes_on_in_a_real_runs_folder(preset, trained_run, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(trained_run, real)
    before = file_hashes(real)
    refused = run_cli(
        "lit_cifar.train",
        f"debug={preset}",
        *tiny_cifar_overrides(trained_run.parent / "data"),
        "model=week11_cnn",
        "ckpt_path=last",
        "trainer.max_epochs=3",  # as if to extend it
        f"hydra.run.dir={real}",
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"debug: None -> {preset}" in line
    assert file_hashes(real) == before
