"""`python -m lit_cifar.train [overrides]`: checks → how the run starts in its folder → a sweep job's own steps
(lit_cifar.sweep.jobs.prepare_job) → data, model, callbacks, loggers, trainer → fit → test → the run's record; read
from `main` down.

Lightning (and all that needs it) is imported in `fit_and_test`, once a start passed its checks: `--help`, a
config error or a refused start answer in about the time it takes to import torch."""

import logging
import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lit_cifar.run.config import config_summary, resolved_config
from lit_cifar.run.dirs import is_empty
from lit_cifar.run.errors import RunStopped, run_app, stop_signal
from lit_cifar.run.folders import SweepRecord
from lit_cifar.run.lifecycle import other_rank, rank_0_start, ranks_told, run_held, to_log_files
from lit_cifar.run.mode import in_multirun
from lit_cifar.run.overrides import as_typed
from lit_cifar.run.record import save_config, supersede, write_outcome
from lit_cifar.run.resume import Start, check_resumable, plan_start
from lit_cifar.run.validate import check_and_complete
from lit_cifar.sweep.jobs import prepare_job
from lit_cifar.sweep.overrides import confirmation_command, run_command, sweep_command
from lit_cifar.sweep.resolvers import register
from lit_cifar.sweep.search import is_search

log = logging.getLogger(__name__)
register()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if (start := rank_0_start()) is not None:  # another rank of a ddp run, started by Lightning
        with other_rank():
            return fit_and_test(cfg, run_dir, start).get(cfg.optimized_metric)
    new = is_empty(run_dir)
    with run_held(run_dir, new):
        return train(cfg, run_dir, new).get(cfg.optimized_metric)


def train(cfg: DictConfig, run_dir: Path, new: bool) -> dict[str, float]:
    """Fit, then test with the best checkpoint; return every final metric. Nothing in `run_dir` changes
    before the start has passed its checks; a finished run is reported, not trained again."""
    hydra_cfg = HydraConfig.get()
    search = hydra_cfg.sweeper if in_multirun() and is_search(hydra_cfg) else None
    check_and_complete(cfg, as_typed(hydra_cfg.overrides.task), search)
    if new and in_multirun():
        save_run_config(run_dir, cfg)  # a sweep's table lists a job that fails its checks by its overrides
    start = plan_start(cfg, run_dir, new, sweep_job=in_multirun())
    if start.finished is not None:
        print(f"{run_dir}: {start.finished.get('status')} already, left as it is", file=sys.stderr)
        return start.finished.get("metrics", {})
    return fit_and_test(cfg, run_dir, start)


def fit_and_test(cfg: DictConfig, run_dir: Path, start: Start) -> dict[str, float]:
    first, _, groups = config_summary(resolved_config(cfg), HydraConfig.get().runtime.choices, str(run_dir)).partition(
        "\n"
    )
    log.info("%s", first)  # the seed and the run dir on the console, before seconds of imports; the config in train.log
    to_log_files(log, f"the config, by group:\n{groups}")
    from lit_cifar.run.provenance import provenance
    from lit_cifar.training.build import build

    extra_callbacks = prepare_job(cfg)  # a sweep job's: its devices, its share of the machine, its trial's report
    built = build(cfg, extra_callbacks=extra_callbacks)
    datamodule, module, trainer = built.datamodule, built.module, built.trainer
    if start.ckpt_path:
        check_resumable(cfg, module, start.ckpt_path)
    if trainer.is_global_zero:  # the other ranks of a ddp run share its run dir
        save_run_config(run_dir, cfg)
        supersede(run_dir)  # an extended or retried run: its old outcome no longer describes it
    begin = time.perf_counter()
    try:
        with ranks_told(start):
            trainer.fit(module, datamodule=datamodule, ckpt_path=start.ckpt_path, weights_only=True)
        metrics = dict(trainer.callback_metrics)
        checkpoints = trainer.checkpoint_callback
        saved = [checkpoints.best_model_path, checkpoints.last_model_path] if checkpoints else []
        tested = next((path for path in saved if path and Path(path).is_file()), "")  # without validation: last
        debug = cfg.get("debug")  # a debug= preset (conf/debug/): it shows the code runs, its numbers are no result
        smoke = bool(debug or cfg.trainer.get("fast_dev_run")) or trainer.global_step == 0
        why = f"debug={debug}" if debug else "trainer.fast_dev_run, or no training batch"
        trainer.test(module, datamodule=datamodule, ckpt_path=None if smoke else tested or None, weights_only=True)
    except SystemExit as stop:  # how Lightning ends a run after SIGTERM, and (with status 1) after Ctrl-C
        signum = stop_signal(stop) or signal.SIGINT  # SIGTERM before Lightning held it: Stopped in its exit(1)
        raise RunStopped(signum, resume_command(run_dir)) from None
    metrics = {name: float(value) for name, value in {**metrics, **trainer.callback_metrics}.items()}
    if module.best_val_acc() is not None:  # also when the resumed fit had no epoch left to run
        metrics["val/acc_best"] = module.best_val_acc()
    record = {
        "status": "smoke" if smoke else "ok",
        **({"reason": f"a smoke run ({why}): not a result"} if smoke else {}),
        "name": cfg.name,  # name= and tags=: what the user called the run
        "tags": list(cfg.tags),
        "metrics": metrics,
        "best_checkpoint": "" if smoke else checkpoints.best_model_path if checkpoints else "",  # by val/acc
        "tested_checkpoint": "" if smoke else tested,
        "wall_time_s": time.perf_counter() - begin,
        "images": dict(module.images_measured),
        **start.record(),
        **provenance(trainer, cfg.seed),
    }
    if trainer.is_global_zero:
        record = write_outcome(run_dir, record)  # `failed` when a metric is no finite number
    results = [f"{name}={metrics[name]:.4f}" for name in ("val/acc_best", "test/acc") if name in metrics]
    weights = "the last weights" if smoke or not tested else Path(tested).name
    log.info("%s (%s, tested %s), run dir %s", " ".join(results), record["status"], weights, run_dir)
    return metrics


def save_run_config(run_dir: Path, cfg: DictConfig) -> None:
    save_config(run_dir, cfg, HydraConfig.instance().cfg, resolved_config(cfg))


def resume_command(run_dir: Path) -> str:
    """The command that goes on with this run (the whole sweep for a sweep job, its confirmation for one of those)."""
    hydra_cfg = HydraConfig.get()
    hydra_lines, task = as_typed(hydra_cfg.overrides.hydra), as_typed(hydra_cfg.overrides.task)
    if in_multirun():
        sweep_dir = Path(hydra_cfg.sweep.dir)
        confirming = confirmation_command(sweep_dir, hydra_lines, task, hydra_cfg.sweeper.get("confirm"))
        return confirming or sweep_command(SweepRecord.load(sweep_dir))
    return run_command([*hydra_lines, *task], run_dir)


if __name__ == "__main__":
    run_app(main)
