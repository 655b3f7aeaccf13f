import json
from pathlib import Path

import pytest
from conftest import REPO, run_cli, tiny_cifar_overrides, write_cifar
from omegaconf import OmegaConf

from lit_cifar.data.make_chars import generate
from lit_cifar.run.overrides import overrides_of

EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def data_of(experiment: str) -> str:
    """The data option an experiment selects (`override /data: …`), else the default cifar10."""
    defaults = OmegaConf.load(REPO / "conf" / "experiment" / f"{experiment}.yaml").get("defaults", [])
    return next((d["override /data"] for d in defaults if "override /data" in d), "cifar10")


def tiny_data(data: str, tmp_path: Path) -> list[str]:
    """Overrides that point a data option at a tiny fixture in its real on-disk format."""
    if data == "cifar10":
        return tiny_cifar_overrides(write_cifar(tmp_path / "cifar"))
    if data == "chars":
        generate(tmp_path / "chars", {"train": 2, "test": 1}, font_dirs=[])
        return [
            f"data.root={tmp_path / 'chars'}",
            "data.image_size=32",
            "data.val_size=52",
            "data.batch_size=16",
            "data.num_workers=0",
            "trainer=cpu",
            "callbacks.progress_bar=null",
        ]
    raise AssertionError(f"no tiny fixture for data={data}; add one to tiny_data()")


@pytest.mark.slow
@pytest.mark.parametrize("data", sorted({data_of(e) for e in EXPERIMENTS}))
def test_every_experiment_trains_one_batch(data, tmp_path):
    """All experiments on one dataset as one sweep (so each is also sweepable), one batch each."""
    experiments = [e for e in EXPERIMENTS if data_of(e) == data]
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "lit_cifar.train",
        "-m",
        f"experiment={','.join(experiments)}",
        *tiny_data(data, tmp_path),
        "trainer.fast_dev_run=true",
        f"hydra.sweep.dir={sweep_dir}",
    )
    outcome = {}
    for path in sweep_dir.glob("*/metrics.json"):
        record = json.loads(path.read_text())
        job = overrides_of(list(OmegaConf.load(path.parent / ".hydra" / "overrides.yaml")), as_written=True)
        outcome[job["experiment"]] = record["status"] if record["status"] == "smoke" else record.get("reason")
    # one batch (trainer.fast_dev_run): a smoke run, recorded as what it is
    assert outcome == dict.fromkeys(experiments, "smoke"), result.stderr[-3000:]
    assert result.returncode == 0
