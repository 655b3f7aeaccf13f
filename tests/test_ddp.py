import json

import pytest
import torch
from conftest import run_cli, tiny_cifar_overrides


@pytest.mark.slow
def test_a_single_run_trains_with_ddp_on_two_cpu_processes_and_extends(tmp_path, cifar_root):
    """README: a run on several devices is a single run (no -m) with Lightning's ddp; here 2 CPU processes.
    Lightning starts rank 1 as the same command in rank 0's run dir: it trains, rank 0 alone writes the record
    and the metrics, and a resume that extends the run starts both ranks from the same checkpoint."""
    run_dir = tmp_path / "run"
    args = [
        *tiny_cifar_overrides(cifar_root),
        "model=two_layer_fc",
        "model.hidden=8",
        "+trainer.strategy=ddp",
        "trainer.devices=2",
    ]
    first = run_cli("lit_cifar.train", *args, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok" and record["device"]["count"] == 2
    assert 0.0 <= record["metrics"]["test/acc"] <= 1.0
    assert "hydra.job.name" not in (run_dir / ".hydra" / "overrides.yaml").read_text()  # rank 0's own record

    more = run_cli("lit_cifar.train", *args, "trainer.max_epochs=2", "ckpt_path=last", f"hydra.run.dir={run_dir}",
                   cwd=tmp_path)  # fmt: skip
    assert more.returncode == 0 and "Traceback" not in more.stderr, more.stderr[-3000:]
    assert "Restoring states from the checkpoint path at" in (run_dir / "train.log").read_text()
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1  # the second epoch ran
