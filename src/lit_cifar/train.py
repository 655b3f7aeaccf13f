"""`python -m lit_cifar.train [overrides]`: seed → data, model, callbacks, loggers, trainer → fit → test.

Lightning (and all that needs it) is imported in `fit_and_test`, once a start passed its checks: `--help`, a
config error or a refused start answer in about the time it takes to import torch."""

import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lit_cifar.checkpoints import RECORD, Start, check_resumable, plan_start, resolved_config
from lit_cifar.errors import RunStopped, exit_on_user_error, run_app
from lit_cifar.rundir import held, is_empty, removed_on_error
from lit_cifar.search import is_search, trial_callbacks
from lit_cifar.sweep import (
    as_typed,
    failure_recorded,
    in_multirun,
    refuse_several_devices,
    run_command,
    share_machine,
    sweep_command,
)
from lit_cifar.validate import check_input_size, check_later_options, check_needs_validation, check_start

log = logging.getLogger(__name__)


def write_atomically(path: Path, text: str) -> None:
    """Write next to `path`, then rename over it: a kill never leaves it half written."""
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def save_run_record(run_dir: Path, cfg: DictConfig) -> None:
    """Hydra's `.hydra/` files (config, hydra, overrides), plus the resolved config a resume compares with."""
    folder = run_dir / ".hydra"
    folder.mkdir(exist_ok=True)
    write_atomically(folder / "config.yaml", OmegaConf.to_yaml(cfg))
    write_atomically(folder / "hydra.yaml", OmegaConf.to_yaml(HydraConfig.instance().cfg))
    write_atomically(folder / "overrides.yaml", OmegaConf.to_yaml(HydraConfig.get().overrides.task))
    write_atomically(run_dir / RECORD, OmegaConf.to_yaml(resolved_config(cfg)))


def resume_command(run_dir: Path) -> str:
    """The command that goes on with this run (the whole sweep, for a sweep job)."""
    hydra_cfg = HydraConfig.get()
    if in_multirun():
        return sweep_command(Path(hydra_cfg.sweep.dir))
    return run_command([*as_typed(hydra_cfg.overrides.hydra), *as_typed(hydra_cfg.overrides.task)], run_dir)


# Lightning's ddp starts the other ranks as this same command, in rank 0's run dir, while rank 0 holds that
# folder and has written its record there: they learn from rank 0 how the run starts, and only train.
RANK_0_START = "LIT_CIFAR_RANK_0_START"


@contextmanager
def ranks_told(start: Start) -> Iterator[None]:
    """Tell the ranks that Lightning launches in this block how rank 0 starts (they inherit the environment)."""
    os.environ[RANK_0_START] = json.dumps(dataclasses.asdict(start))
    try:
        yield
    finally:
        del os.environ[RANK_0_START]


def fit_and_test(cfg: DictConfig, run_dir: Path, start: Start) -> dict[str, float]:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lit_cifar.loggers import quiet_start
    from lit_cifar.record import config_summary, run_record

    quiet_start()
    share_machine(cfg)
    log.info("%s", config_summary(resolved_config(cfg), HydraConfig.get().runtime.choices, str(run_dir)))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the seed is in metrics.json
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module)
    check_input_size(module.net, cfg.data.in_channels, cfg.data.image_size, cfg.data.num_classes)
    module.run_config = resolved_config(cfg)
    module.replan_schedule = start.extended
    if start.ckpt_path:
        check_resumable(cfg, module, start.ckpt_path)
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None] + trial_callbacks()
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]  # logger=[]: none
    no_validation = {"limit_val_batches": 0} if cfg.data.val_size == 0 else {}
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, **no_validation)
    if trainer.is_global_zero:  # the other ranks of a ddp run share its run dir
        save_run_record(run_dir, cfg)
        if (run_dir / "metrics.json").exists():  # an extended or retried run: that outcome no longer describes it
            os.replace(run_dir / "metrics.json", run_dir / "metrics.superseded.json")

    begin = time.perf_counter()
    try:
        with ranks_told(start):
            trainer.fit(module, datamodule=datamodule, ckpt_path=start.ckpt_path)
        metrics = dict(trainer.callback_metrics)
        checkpoints = trainer.checkpoint_callback
        best = checkpoints.best_model_path if checkpoints else ""
        tested = best or (checkpoints.last_model_path if checkpoints else "")  # without validation: the last
        trainer.test(module, datamodule=datamodule, ckpt_path=tested or None)
    except SystemExit as stop:  # how Lightning ends a run after SIGTERM, and (with status 1) after Ctrl-C
        signum = signal.SIGTERM if isinstance(stop, SIGTERMException) else signal.SIGINT
        raise RunStopped(signum, resume_command(run_dir)) from None
    metrics.update(trainer.callback_metrics)
    metrics = {name: float(value) for name, value in metrics.items()}
    if module.best_val_acc() is not None:  # also when the resumed fit had no epoch left to run
        metrics["val/acc_best"] = module.best_val_acc()
    record = {
        "status": "ok",
        "metrics": metrics,
        "best_checkpoint": best,  # by val/acc; empty without validation
        "tested_checkpoint": tested,
        "wall_time_s": time.perf_counter() - begin,
        **run_record(trainer, cfg.seed),
    }
    if trainer.is_global_zero:
        write_atomically(run_dir / "metrics.json", json.dumps(record, indent=2))
    results = [f"{name}={metrics[name]:.4f}" for name in ("val/acc_best", "test/acc") if name in metrics]
    log.info(
        "%s (tested %s), run dir %s", " ".join(results), Path(tested).name if tested else "the last weights", run_dir
    )
    return metrics


def check_and_complete(cfg: DictConfig) -> None:
    """The start's checks (before anything is written), then what the config leaves to the data:
    `data.num_classes=null` is counted in it, before the model config reads it."""
    check_start(cfg, added=[o for o in as_typed(HydraConfig.get().overrides.task) if o.startswith("+")])
    check_needs_validation(
        cfg, search=HydraConfig.get().sweeper if in_multirun() and is_search(HydraConfig.get()) else None
    )
    if cfg.data.get("num_classes", 0) is None:
        cfg.data.num_classes = instantiate(cfg.data).count_classes()
    check_later_options(cfg)


def train(cfg: DictConfig, run_dir: Path, new: bool) -> dict[str, float]:
    """Fit, then test with the best checkpoint; return every final metric. Nothing in `run_dir` changes
    before the start has passed its checks; a finished run is reported, not trained again."""
    if in_multirun():
        refuse_several_devices(cfg)
    check_and_complete(cfg)
    if new and in_multirun():
        save_run_record(run_dir, cfg)  # a sweep's table lists a job that fails its checks by its overrides
    start = plan_start(cfg, run_dir, new, sweep_job=in_multirun())
    if start.finished is not None:
        status = start.finished.get("status")
        print(f"{run_dir}: {status} already, left as it is", file=sys.stderr)
        return start.finished.get("metrics", {})
    return fit_and_test(cfg, run_dir, start)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if RANK_0_START in os.environ:  # another rank of a ddp run, started by Lightning (see ranks_told)
        start = Start(**json.loads(os.environ[RANK_0_START]))
        try:  # rank 0 checked the start, and says how to go on after a stop
            return fit_and_test(cfg, run_dir, start).get(cfg.optimized_metric)
        except RunStopped as stop:
            raise SystemExit(stop.code) from None
    new = is_empty(run_dir)
    # In a sweep a failed job is recorded and the others run on; the sweep exits 1 at the end (SweepReport).
    # A stopped run (RunStopped: SIGTERM, Ctrl-C) stops the whole sweep, with the command that goes on.
    outcome = failure_recorded(run_dir) if in_multirun() else removed_on_error(run_dir, new, unless="checkpoints")
    with exit_on_user_error(), held(run_dir), outcome:
        return train(cfg, run_dir, new).get(cfg.optimized_metric)


if __name__ == "__main__":
    run_app(main)
