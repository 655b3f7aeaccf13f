"""The callback through which a search job reports its epochs to its Optuna trial."""

import lightning.pytorch as pl

from lit_cifar.run.record import RunPruned


class TrialReport(pl.Callback):
    """In a search job: report `monitor` to the job's Optuna trial after every validation epoch, and stop the
    run at that epoch's end (RunPruned) when the study's pruner judges the trial hopeless. The last epoch is
    reported but never pruned: stopping there saves no work, and the trial goes on to its test as complete."""

    def __init__(self, trial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        epoch, value = trainer.current_epoch + 1, float(trainer.callback_metrics[self.monitor])
        self.trial.report(value, epoch)  # a resumed job reports its epochs again: Optuna keeps the first value
        if epoch < trainer.max_epochs and self.trial.should_prune():
            raise RunPruned(epoch, value, pl_module.best_val_acc(), self.monitor)
