"""An exponential moving average of the weights, validated, checkpointed and tested in their place."""

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class EMA(EMAWeightAveraging):
    """Lightning's EMAWeightAveraging (decay per optimizer step), except that a checkpoint loaded for
    test/validate/predict gives the averaged weights. Lightning's own callback, still holding the average
    from `fit`, would load the raw training weights there (`trainer.test(ckpt_path=best)` after fitting)."""

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
