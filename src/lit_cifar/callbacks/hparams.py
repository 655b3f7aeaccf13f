"""The run's hyperparameters and final metrics, in every logger."""

from collections.abc import Sequence

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger


class HParamsSummary(Callback):
    """Log `hparams` (name → value; None values are left out) and the final values of `metrics` to every
    logger. TensorBoard's HParams take both at once: they are written after testing, so the HParams tab never
    shows placeholders from the start of the run. The other loggers (CSV, MLflow, W&B) take the hyperparameters
    when fitting starts, so a run still going or failed shows them, and hold the final metrics as the last
    values logged. val/acc_best is taken when fitting ends, since testing replaces the callback metrics."""

    def __init__(self, hparams: dict, metrics: Sequence[str] = ("val/acc_best", "test/acc")) -> None:
        self.hparams = {name: value for name, value in hparams.items() if value is not None}
        self.metrics = list(metrics)
        self.final: dict[str, float] = {}

    def _keep(self, trainer: pl.Trainer) -> None:
        self.final.update({m: float(v) for m, v in trainer.callback_metrics.items() if m in self.metrics})

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            if not isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(self.hparams)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._keep(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._keep(trainer)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(self.hparams, self.final, step=trainer.global_step)
