"""`python -m lit_cifar.tune [overrides]`: Lightning's learning-rate finder (and, with `tune.batch_size=true`,
its batch-size finder first) on the training those overrides configure.

Our optimizers are partial configs, so the lr is not a module attribute for Lightning to set: the finder
only measures (each step at a higher lr), and the suggestion is printed as the override to train with."""

import json
import logging
import math
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lit_cifar.run.dirs import held, is_empty, removed_on_error
from lit_cifar.run.errors import UserError, exit_on_user_error, run_app
from lit_cifar.run.overrides import as_typed, key_of
from lit_cifar.run.record import write_atomically
from lit_cifar.run.validate import check_and_complete, check_values
from lit_cifar.sweep.overrides import train_command
from lit_cifar.sweep.resolvers import register

log = logging.getLogger(__name__)
register()

# Tuner.lr_find records an exponential average of the step losses (this beta; it lets no one set it) divided by
# 1 - beta^(global_step + 1), the global step read after the optimizer step has counted the batch: one step too many
# (Lightning 2.6). Its first point was 1 / (1 + beta) of the loss (1.18 for an untrained 10-class net, not
# ln 10 = 2.30), and the curve climbed back over ~50 steps whatever the lr did.
LR_FINDER_BETA = 0.98
FOUND = "lr_find.json"  # what a finished tuning leaves (with its plot): the suggestion, the curve, the command
SKIPPED_STEPS = 10  # the first steps, whose slope `_LRFinder.suggestion` does not judge (nor `steepest_descent`)


def check(tune: DictConfig) -> None:
    """What the finder's keys' own rules (lit_cifar.run.validate.RULES, checked first) cannot say alone."""
    if not tune.min_lr < tune.max_lr or not math.isfinite(tune.max_lr / tune.min_lr):  # the lrs grow by that ratio
        raise UserError(
            f"tune.min_lr={tune.min_lr}, tune.max_lr={tune.max_lr}: need 0 < min_lr < max_lr, e.g. 1e-6 and 1"
        )


def check_optim(optim: DictConfig) -> None:
    """Lightning's finder sets one lr, in torch's units, on every parameter group."""
    units, norm_lr_scale = optim.get("units", "torch"), optim.get("norm_lr_scale", 1)
    if units != "torch" or norm_lr_scale != 1:
        raise UserError(
            f"the lr finder tries one lr in torch's units on all parameters, not optim.units={units} with "
            f"optim.norm_lr_scale={norm_lr_scale}; tune with optim.units=torch optim.norm_lr_scale=1"
        )
    if optim.get("muon") is not None:
        raise UserError(
            "the lr finder tries one lr on all parameters, and optim.muon steps the conv filters with another; "
            "tune without it: ~optim.muon"
        )


def debiased(losses: list[float], start_step: int) -> list[float]:
    """The finder's curve (begun after `start_step` optimizer steps) with its n-th point, the average of n losses,
    divided by 1 - beta^n."""
    beta = LR_FINDER_BETA
    return [loss * (1 - beta ** (start_step + n + 1)) / (1 - beta**n) for n, loss in enumerate(losses, start=1)]


def before_divergence(losses: list[float], steps: int) -> int:
    """How many points of the curve come before its loss diverged: before it is first NaN or infinite (a diverged
    net's loss stays so, and says nothing of the lrs beyond), or before its last point where the finder stopped
    early (Lightning's stops when the loss exceeds 4 times its lowest, 4 being its early_stop_threshold)."""
    finite = next((i for i, loss in enumerate(losses) if not math.isfinite(loss)), len(losses))
    return min(finite, len(losses) - 1) if len(losses) < steps else finite


def steepest_descent(lrs: list[float], losses: list[float], skip_begin: int = SKIPPED_STEPS) -> int | None:
    """The index of the loss's steepest fall per decade of lr (None without a finite loss), up to the curve's
    lowest point (past it the loss has blown up, and may drift down again at absurd lrs), skipping the first
    points as `_LRFinder.suggestion` does. That one (Lightning 2.6) differentiates by the lr itself: on lrs spaced
    by a ratio, the smallest steps win, and once the curve is no longer biased upwards there, a wiggle of noise
    at lr 5e-6 outweighs the real fall."""
    import torch

    finite = [i for i in range(len(losses)) if math.isfinite(losses[i])]
    if not finite:
        return None
    lowest = min(finite, key=lambda i: losses[i])
    first = skip_begin if lowest - skip_begin >= 2 else 0  # a short curve whose lowest point comes early
    points = [(i, math.log10(lrs[i])) for i in finite if first <= i <= lowest]
    if len(points) < 2:
        return lowest  # the loss rose from its first steps: the lr where it was lowest
    index, log_lr = zip(*points, strict=True)
    slopes = torch.gradient(torch.tensor([losses[i] for i in index]), spacing=[torch.tensor(log_lr)])[0]
    return index[int(slopes.argmin())]


def find(cfg: DictConfig, run_dir: Path) -> dict:
    """Run the finders; return what they found (and the lr curve) as written to `lr_find.json`."""
    from lightning.pytorch.tuner import Tuner
    from torch.utils.tensorboard import SummaryWriter

    from lit_cifar.training.build import build_data, build_module, build_trainer, seeded

    seeded(cfg)
    datamodule = build_data(cfg)
    module = build_module(cfg)
    trainer = build_trainer(
        cfg,
        max_epochs=max(cfg.trainer.max_epochs, cfg.tune.steps),  # enough epochs for the steps on any data size
        limit_val_batches=0,  # the finders judge the training loss
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        logger=False,
    )
    tuner = Tuner(trainer)
    found = {}
    if cfg.tune.batch_size:
        found["data.batch_size"] = tuner.scale_batch_size(
            module, datamodule=datamodule, mode="power", init_val=cfg.data.batch_size,
            max_trials=cfg.tune.max_batch_doublings,
        )  # fmt: skip
    start_step = trainer.global_step
    finder = tuner.lr_find(
        module, datamodule=datamodule, min_lr=cfg.tune.min_lr, max_lr=cfg.tune.max_lr,
        num_training=cfg.tune.steps, update_attr=False,
    )  # fmt: skip
    if finder is None:
        raise UserError("the lr finder does not run with trainer.fast_dev_run=true; tune without it")
    lrs, losses = finder.results["lr"], debiased(finder.results["loss"], start_step)
    finder.results["loss"] = losses
    if not math.isfinite(losses[0]):
        raise UserError(
            f"the loss was {losses[0]} at the lr finder's first step, before any lr acted; check the data and the "
            f"model with a short training ({train_command([])} … trainer.fast_dev_run=true)"
        )
    judged = before_divergence(losses, cfg.tune.steps)
    if judged < len(losses):
        diverged_at = lrs[judged - 1]  # the lr of the step after which the loss diverged
        if judged < SKIPPED_STEPS:
            raise UserError(
                f"the loss diverged ({losses[judged]:.3g} after step {judged} of {cfg.tune.steps}, at lr "
                f"{diverged_at:.2g}) before the finder had {SKIPPED_STEPS} steps to judge; lower tune.max_lr to "
                f"{diverged_at:.2g} or below"
            )
        log.info("the loss diverged after step %d (lr %.2g); the suggestion is from those before", judged, diverged_at)
    best = steepest_descent(lrs[:judged], losses[:judged])
    found["optim.lr"] = float(f"{finder.results['lr'][best]:.2g}")
    figure = finder.plot()
    figure.axes[0].plot(
        finder.results["lr"][best], finder.results["loss"][best], markersize=10, marker="o", color="red"
    )
    figure.axes[0].set_title(f"{len(finder.results['lr'])} steps; suggested optim.lr={found['optim.lr']}")
    figure.savefig(run_dir / "lr_find.png", dpi=110)
    with SummaryWriter(str(run_dir / "tensorboard")) as writer:
        writer.add_figure("tune/lr_find", figure)
        for step, (lr, loss) in enumerate(zip(finder.results["lr"], finder.results["loss"], strict=True)):
            writer.add_scalar("tune/loss_by_step", loss, step)
            writer.add_scalar("tune/lr_by_step", lr, step)
    return {"found": found, "lr": finder.results["lr"], "loss": finder.results["loss"]}


@hydra.main(version_base="1.3", config_path="../../conf", config_name="tune")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    new = is_empty(run_dir)
    with exit_on_user_error(), held(run_dir, what="tuning"), removed_on_error(run_dir, new, unless=FOUND):
        if (run_dir / FOUND).exists():
            raise UserError(f"{run_dir} already holds a tuning; pick a new hydra.run.dir")
        overrides = as_typed(HydraConfig.get().overrides.task)
        check_values(OmegaConf.masked_copy(cfg, ["tune", "optim"]))  # before check() compares them
        check(cfg.tune)
        check_optim(cfg.optim)
        check_and_complete(cfg, overrides, search=None)  # the start's checks, which import the classes named
        result = find(cfg, run_dir)
        given = [o for o in overrides if not key_of(o).startswith(("tune.", *result["found"]))]
        command = train_command([*given, *(f"{k}={v}" for k, v in result["found"].items())])
        write_atomically(run_dir / FOUND, json.dumps({**result, "command": command}, indent=2))
        print(" ".join(f"{k}={v}" for k, v in result["found"].items()), f"(plot: {run_dir / 'lr_find.png'})")
        print(f"train with: {command}")


if __name__ == "__main__":
    run_app(main)
