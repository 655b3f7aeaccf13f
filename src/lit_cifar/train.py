"""`python -m lit_cifar.train [overrides]`: seed → data, model, callbacks, loggers, trainer → fit → test."""

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lit_cifar.checkpoints import resume_path
from lit_cifar.errors import UserError, exit_on_user_error, run_app
from lit_cifar.record import run_record
from lit_cifar.sweep import failure_recorded, in_multirun, refuse_several_devices, share_machine

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test with the best checkpoint; return every final metric."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if in_multirun():
        refuse_several_devices(cfg)
    if cfg.ckpt_path is None and (run_dir / "checkpoints").exists():
        raise UserError(f"{run_dir} already holds a run; add ckpt_path=last to resume it or pick a new hydra.run.dir")
    if not isinstance(cfg.seed, int):
        raise UserError(f"seed={cfg.seed} must be an integer, e.g. seed=42")
    share_machine(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    # Absolute, so that evaluate and predict find the data from any working directory.
    module.run_config["data"]["root"] = str(Path(cfg.data.root).resolve())
    ckpt_path = resume_path(cfg, run_dir, module, fresh_start_allowed=in_multirun())
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    loggers = [instantiate(c) for c in cfg.logger.values() if c is not None]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = dict(trainer.callback_metrics)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
    metrics.update(trainer.callback_metrics)
    metrics = {name: float(value) for name, value in metrics.items()}
    record = {
        "status": "ok",
        "metrics": metrics,
        "best_checkpoint": best,
        "wall_time_s": time.perf_counter() - start,
        **run_record(trainer, cfg.seed),
    }
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    log.info(
        "val/acc_best=%.4f test/acc=%.4f, run dir %s",
        metrics.get("val/acc_best", float("nan")),
        metrics.get("test/acc", float("nan")),
        run_dir,
    )
    return metrics


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # In a sweep a failed job is recorded and the others run on; the sweep exits 1 at the end (SweepReport).
    # SIGTERM (a SystemExit, which failure_recorded lets through) stops the whole sweep with status 143.
    with exit_on_user_error(), failure_recorded() if in_multirun() else nullcontext():
        return train(cfg).get(cfg.optimized_metric)


if __name__ == "__main__":
    run_app(main)
