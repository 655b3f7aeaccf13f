"""A warning, early in a long run on the CPU, of how long it will take, and what makes it shorter."""

import logging
import time
from typing import Annotated

import lightning.pytorch as pl
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback

from lit_cifar.run.declared import Range

log = logging.getLogger(__name__)


class RunTimeWarning(Callback):
    """Times `batches` training batches after the first `warmup` ones (which are slow), extrapolates to the
    epochs the run has left, and warns once when that is more than `warn_above_min` minutes. Only on the CPU:
    the default 20 epochs of resnet_lite take minutes on a GPU and hours on a laptop, where nothing else would
    tell a student before the hours have passed."""

    def __init__(
        self,
        warn_above_min: Annotated[float, Range(0, words="a number of minutes ≥ 0", example="10")] = 10.0,
        warmup: int = 3,
        batches: int = 10,
    ) -> None:
        self.warn_above_min, self.warmup, self.batches = warn_above_min, warmup, batches
        self._seen, self._started, self._done = 0, 0.0, False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen, self._done = 0, not isinstance(trainer.accelerator, CPUAccelerator)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int):
        if self._done:
            return
        self._seen += 1
        if self._seen == self.warmup:
            self._started = time.perf_counter()
        elif self._seen == self.warmup + self.batches:
            self._done = True
            self._warn_if_long(trainer, (time.perf_counter() - self._started) / self.batches, batch_idx)

    def _warn_if_long(self, trainer: pl.Trainer, per_batch: float, batch_idx: int) -> None:
        epochs_left = trainer.max_epochs - trainer.current_epoch
        seconds_left = per_batch * (trainer.num_training_batches * epochs_left - batch_idx - 1)
        if seconds_left > 60 * self.warn_above_min:
            log.warning(
                "this run trains on the CPU: an epoch takes about %s, so the %d epochs left take about %s "
                "(validation not counted); for a quick look pass trainer.max_epochs=3, on a GPU trainer=gpu",
                _duration(per_batch * trainer.num_training_batches),
                epochs_left,
                _duration(seconds_left),
            )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
