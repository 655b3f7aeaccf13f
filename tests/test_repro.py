"""Same seed, same numbers; and every run dir records what produced them."""

import json
import subprocess

import pytest
import yaml
from conftest import REPO, run_cli, tiny_cifar_overrides


@pytest.mark.slow
def test_two_seeded_deterministic_runs_give_identical_metrics_and_a_full_record(cifar_root, tmp_path):
    records = []
    for name in ("a", "b"):
        args = [
            *tiny_cifar_overrides(cifar_root),
            "seed=3",
            "trainer.deterministic=true",
            "trainer.max_epochs=2",
            f"hydra.run.dir={tmp_path / name}",
        ]
        result = run_cli("lit_cifar.train", *args)
        assert result.returncode == 0, result.stderr
        records.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    a, b = records
    assert a["metrics"] == b["metrics"]  # exactly: CPU, deterministic algorithms, same seed
    assert {"val/acc_best", "test/acc", "train/loss"} <= a["metrics"].keys()

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert a["git_commit"] == commit and isinstance(a["git_dirty"], bool)
    assert set(a["versions"]) >= {"python", "torch", "torchvision", "lightning", "hydra-core"}
    assert all(a["versions"].values())
    assert a["device"]["type"] == "cpu" and a["device"]["count"] == 1
    assert a["seed"] == 3 and a["wall_time_s"] > 0
    # Hydra's part of the record: the resolved config and the overrides.
    hydra_dir = tmp_path / "a" / ".hydra"
    assert yaml.safe_load((hydra_dir / "config.yaml").read_text())["seed"] == 3
    assert "seed=3" in yaml.safe_load((hydra_dir / "overrides.yaml").read_text())
