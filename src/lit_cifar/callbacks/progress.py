"""A progress bar for the running epoch only, and only on a terminal."""

import logging
import sys

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar


class _CurrentStdout:
    """Writes to whatever `sys.stdout` is at the time: Rich's proxy while its bar is live."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class EpochProgressBar(RichProgressBar):
    """Rich's bar, showing how far the running epoch (or validation, or test) is and nothing else: the epoch's
    numbers are in its line of the log (EpochLog). Lightning's bar shows the metrics logged last, which puts
    this epoch's validation next to the previous epoch's training loss. Output that is not a terminal (a pipe,
    a file, a batch job's log) gets no bar: Rich would write only its last state there.

    Rich prints what goes to `sys.stdout` above the bar, but the console handler of the log holds the stream
    it was given at the start; while the bar is drawn, that handler writes through `sys.stdout` instead, so log
    lines never land on the bar's line."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._handlers: list[logging.StreamHandler] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not sys.stdout.isatty():
            self.disable()
        elif not self._handlers:
            self._handlers = [
                h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler and h.stream is sys.stdout
            ]
            for handler in self._handlers:
                handler.setStream(_CurrentStdout())
        super().setup(trainer, pl_module, stage)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        for handler in self._handlers:
            handler.setStream(sys.stdout)
        self._handlers = []

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        return {}

    def _get_train_description(self, current_epoch: int) -> str:
        # Lightning's reads `Epoch 0/2` for the first of three; the log line beneath says `epoch 1/3`.
        return f"Epoch {current_epoch + 1}/{self.trainer.max_epochs}".ljust(len(self.validation_description))
