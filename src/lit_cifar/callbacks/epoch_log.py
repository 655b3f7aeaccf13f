"""One line per epoch in the run's log (console and train.log): the record that stays when a bar is gone."""

import logging
import time

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class EpochLog(Callback):
    """`epoch 2/20  train loss 1.2345 acc 0.5678  val loss 1.3456 acc 0.5432 (best 0.5500)  lr 1.00e-03  12.31 s`.

    Lightning calls callbacks' `on_train_epoch_end` before the module's, where the module logs the epoch's
    training loss and accuracy, so an epoch's line is written once its hooks are all done: when the next epoch
    starts, or training ends. The lr is the one the epoch started with (a per-step schedule moves it within the
    epoch); the seconds count the epoch's validation. A sweep job's console lines are told apart by the
    prefix its log format gives them (conf/hydra/default.yaml)."""

    def __init__(self) -> None:
        self._started, self._lr, self._validated = 0.0, None, False
        self._ended: tuple[int, float, float | None, bool] | None = None  # epoch, seconds, lr, validated

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)
        self._lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        self._started, self._validated = time.perf_counter(), False

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ended = (trainer.current_epoch, time.perf_counter() - self._started, self._lr, self._validated)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)

    def _write(self, trainer: pl.Trainer) -> None:
        if self._ended is None:
            return
        epoch, seconds, lr, validated = self._ended
        self._ended = None
        metrics = trainer.callback_metrics

        def pair(stage: str) -> str:
            return f"{stage} loss {float(metrics[f'{stage}/loss']):.4f} acc {float(metrics[f'{stage}/acc']):.4f}"

        parts = [f"epoch {epoch + 1}/{trainer.max_epochs}"]
        if "train/loss" in metrics:
            parts.append(pair("train"))
        if validated and "val/loss" in metrics:
            best = f" (best {float(metrics['val/acc_best']):.4f})" if "val/acc_best" in metrics else ""
            parts.append(pair("val") + best)
        if lr is not None:
            parts.append(f"lr {lr:.2e}")
        parts.append(f"{seconds:.2f} s")
        log.info("  ".join(parts))
