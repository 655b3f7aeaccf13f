"""An exponential moving average of the weights, validated, checkpointed and tested in their place."""

from typing import Annotated

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.optim.swa_utils import AveragedModel

from lit_cifar.run.declared import Range


class ExponentialAverage(AveragedModel):
    """torch's AveragedModel with an exponential average whose update reads nothing on the host: torch's own
    update tests its count of updates (`n_averaged`, a device tensor) on the host twice, a GPU sync per step.
    The count lives here as a Python int too; the tensor still goes into checkpoints, and comes back from them."""

    def __init__(self, model: nn.Module, decay: float, device: torch.device) -> None:
        super().__init__(model, device=device, use_buffers=True)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        averages = [*self.module.parameters(), *self.module.buffers()]
        currents = [tensor.detach() for tensor in (*model.parameters(), *model.buffers())]
        if self.updates == 0:
            torch._foreach_copy_(averages, currents)
        else:
            floating = [i for i, average in enumerate(averages) if average.is_floating_point()]
            torch._foreach_lerp_([averages[i] for i in floating], [currents[i] for i in floating], 1 - self.decay)
            for average, current in zip(averages, currents, strict=True):
                if not average.is_floating_point():  # BatchNorm's num_batches_tracked: a count, not averaged
                    average.copy_(current)
        self.n_averaged += 1
        self.updates += 1

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict, assign)
        self.updates = int(self.n_averaged)  # once per resume, not per step
        return result


class EMA(EMAWeightAveraging):
    """Lightning's EMAWeightAveraging (decay per optimizer step) over an average updated without host reads,
    and a checkpoint loaded for test/validate/predict gives the averaged weights: Lightning's own callback,
    still holding the average from `fit`, would load the raw training weights there
    (`trainer.test(ckpt_path=best)` after fitting)."""

    def __init__(
        self,
        decay: Annotated[
            float,
            Range(0, 1, high_open=True, words="a number in [0, 1) (at 1 the average never moves)", example="0.999"),
        ] = 0.999,
        update_every_n_steps: Annotated[int, Range(1, ints=True, words="a positive integer", example="1")] = 1,
        **kwargs,
    ) -> None:
        super().__init__(decay=decay, update_every_n_steps=update_every_n_steps, **kwargs)
        self.decay = decay

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._average_model = ExponentialAverage(pl_module, self.decay, self._device or pl_module.device)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
