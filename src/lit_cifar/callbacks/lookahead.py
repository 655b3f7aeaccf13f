"""Lookahead as airbench94 does it: a slow copy of the net that the weights are pulled back to every few steps."""

from typing import Annotated, Any

import lightning.pytorch as pl
import torch

from lit_cifar.run.declared import Range


class Lookahead(pl.Callback):
    """Every `every_n_steps` optimizer steps, the slow copy of the net's floating-point state (parameters and
    buffers such as BatchNorm's running statistics) moves toward the current values by 1 - decay, and the net is set
    to it. decay = `base`**every_n_steps × (step / total steps)**`power`: no pull-back early on (decay near 0, the
    copy follows the net), a strong one at the end (airbench94: 0.95**5 × t³). After the last step of training the
    net is set to the slow copy. The copy goes into checkpoints, so a resumed run goes on exactly.

    The update reads nothing on the host (decay comes from Python ints) and runs as two foreach kernels."""

    def __init__(
        self,
        every_n_steps: Annotated[int, Range(1, ints=True, words="a positive integer", example="5")] = 5,
        base: Annotated[float, Range(0, 1, words="a number in [0, 1]", example="0.95")] = 0.95,
        power: Annotated[float, Range(0, words="a number ≥ 0", example="3")] = 3.0,
    ) -> None:  # the values are checked at the start, before torch loads (lit_cifar.run.validate)
        self.every_n_steps, self.base, self.power = every_n_steps, base, power
        self.slow: dict[str, torch.Tensor] = {}
        self._live: dict[str, torch.Tensor] = {}
        self._last_update, self._total_steps = 0, 1

    def decay(self, step: int, total_steps: int) -> float:
        return self.base**self.every_n_steps * (step / total_steps) ** self.power

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The net's state tensors as they are for training (on its device, after a restore): updated in place.
        self._live = {name: t for name, t in pl_module.net.state_dict().items() if t.is_floating_point()}
        if self.slow:  # restored from a checkpoint
            self.slow = {name: self.slow[name].to(live.device) for name, live in self._live.items()}
        else:
            self.slow = {name: live.clone() for name, live in self._live.items()}
        self._last_update, self._total_steps = trainer.global_step, trainer.estimated_stepping_batches

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step == self._last_update:  # a batch that accumulated its gradient without a step
            return
        self._last_update = step
        slow, live = list(self.slow.values()), list(self._live.values())
        if step % self.every_n_steps == 0:
            torch._foreach_lerp_(slow, live, 1 - self.decay(step, self._total_steps))
        if step % self.every_n_steps == 0 or step >= self._total_steps:
            torch._foreach_copy_(live, slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": self.slow}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.slow = state_dict["slow"]
