"""What only a GPU shows (`pytest -m gpu`; skipped without CUDA): the fast recipe on `trainer=gpu`, compiled,
deterministic, in bf16, free of host syncs, and resumed where fewer GPUs are visible than when it was saved."""

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from conftest import REPO, run_cli, tiny_cifar_overrides
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def on_gpu(root: Path) -> list[str]:
    """The tiny-fixture (or slice) overrides of the CPU tests, on `trainer=gpu`."""
    return [o for o in tiny_cifar_overrides(root) if o != "trainer=cpu"] + ["trainer=gpu"]


def train(tmp_path: Path, *overrides: str) -> dict:
    """One epoch through the CLI; the run's metrics.json."""
    run_dir = tmp_path / "run"
    proc = run_cli("lit_cifar.train", *overrides, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= record["metrics"]["test/acc"] <= 1.0
    return record


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra", [[], ["module.compile=true"], ["trainer.precision=bf16-true"]], ids=["eager", "compiled", "bf16-true"]
)
def test_fast94_trains_an_epoch_of_the_slice(cifar_slice, tmp_path, extra):
    data = [f"data.root={cifar_slice}", "data.download=false", "data.verify_checksums=false"]
    train(tmp_path, "experiment=fast94", "trainer=gpu", *data, "callbacks.progress_bar=null", *extra)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["fast_cnn", "resnet18"])
def test_deterministic_training(cifar_root, tmp_path, model):
    """Adaptive pooling has no deterministic CUDA backward: this crashed before the nets pooled with mean/amax."""
    train(tmp_path, f"model={model}", *on_gpu(cifar_root), "trainer.deterministic=true")


class SyncsAreErrors(pl.Callback):
    """CUDA's sync debug mode raises at any host-device sync in the training batches (validation, which reads
    its metrics on the host, and the epoch's end are left out)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.cuda.set_sync_debug_mode("error")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.cuda.set_sync_debug_mode("default")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.cuda.set_sync_debug_mode("default")


def test_a_fast94_training_epoch_never_syncs_with_the_host(cifar_root):
    # Callbacks that write into a run dir or a logger are left out: this runs without Hydra's runtime.
    leave_out = ["model_checkpoint", "epoch_log", "hparams", "images", "model_summary", "lr_monitor"]
    overrides = ["experiment=fast94", *on_gpu(cifar_root), "model.widths=[16,32,32]"]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", [*overrides, *(f"~callbacks.{name}" for name in leave_out)])
    pl.seed_everything(cfg.seed)
    sync_check = SyncsAreErrors()
    trainer = instantiate(
        cfg.trainer,
        default_root_dir=None,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        log_every_n_steps=10**6,  # a log line reads the logged values on the host
        callbacks=[sync_check, *(instantiate(c) for c in cfg.callbacks.values() if c is not None)],
    )
    try:
        trainer.fit(instantiate(cfg.module), datamodule=instantiate(cfg.data))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.global_step > 0


@pytest.mark.slow
def test_a_checkpoint_of_a_gpu_that_is_not_visible_resumes(cifar_root, tmp_path, monkeypatch):
    """As a sweep job saved on cuda:1 of a two-GPU host, resumed where only one GPU is visible."""
    from test_devices import saved_as_on

    run_dir = tmp_path / "run"
    args = [*on_gpu(cifar_root), "model=week11_cnn", f"hydra.run.dir={run_dir}"]
    first = run_cli("lit_cifar.train", *args, "trainer.max_epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]

    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    for state in checkpoint["callbacks"].values():
        if "rng_states" in state:  # a generator state for each GPU visible when it was saved
            state["rng_states"]["cuda"] = [torch.cuda.get_rng_state(0)] * 2
    with saved_as_on("cuda:1"):
        torch.save(checkpoint, last)

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    resumed = run_cli("lit_cifar.train", *args, "trainer.max_epochs=2", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(last, weights_only=True)["epoch"] == 1


@pytest.mark.slow
def test_bench_figure_7_counts_trials_per_minute_at_each_jobs_per_gpu(cifar_root, tmp_path):
    proc = run_cli(
        "benchmarks.bench", "--data-root", str(cifar_root), "--sections", "7", "--val-size", "20", "--trials", "2",
        "--jobs-per-gpu", "1,2", "--trial-overrides", "model=two_layer_fc model.hidden=8", "--out", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = [json.loads(p.read_text()) for p in tmp_path.glob("bench_*.json")]
    assert [row["jobs_per_gpu"] for row in result["trials"]] == [1, 2]
    assert all(row["trials_per_min"] > 0 for row in result["trials"])


@pytest.mark.slow
def test_auto_jobs_per_gpu_measures_a_real_job_and_the_sweep_trains(cifar_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "lit_cifar.train", "-m", "model=week11_cnn", "seed=0,1,2", "trainer.max_epochs=1", *on_gpu(cifar_root),
        "hydra/launcher=parallel", "hydra.launcher.jobs_per_gpu=auto", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    per_gpu = int((sweep / ".gpus" / "jobs_per_gpu").read_text())
    assert 1 <= per_gpu <= 8
    assert (
        f"{per_gpu} jobs per GPU" in proc.stdout + proc.stderr + (sweep / "multirun.log").read_text()
        if (sweep / "multirun.log").exists()
        else True
    )
    assert len(list(sweep.glob("*/metrics.json"))) == 3
