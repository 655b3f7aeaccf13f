"""Stop training at a NaN or infinite loss instead of carrying on with broken weights."""

import lightning.pytorch as pl
import torch

from lit_cifar.run.errors import UserError


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite."""


class FiniteLossCheck(pl.Callback):
    """Notes on the device the first step whose loss is not finite, and reads that note on the host only
    every `trainer.log_every_n_steps` steps and at the end of each epoch, where Lightning synchronizes
    anyway to log. So a run stops at most `log_every_n_steps` steps after its loss went bad, and the
    message names the step where it did."""

    def __init__(self) -> None:
        self.first_bad_step: torch.Tensor | None = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs["loss"].detach()
        if self.first_bad_step is None or self.first_bad_step.device != loss.device:
            self.first_bad_step = torch.tensor(-1, device=loss.device)
        newly_bad = (self.first_bad_step < 0) & ~torch.isfinite(loss)
        self.first_bad_step = torch.where(newly_bad, trainer.global_step, self.first_bad_step)
        if trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
            self._raise_if_bad(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._raise_if_bad(trainer)

    def _raise_if_bad(self, trainer: pl.Trainer) -> None:
        step = -1 if self.first_bad_step is None else int(self.first_bad_step)
        if step >= 0:
            raise NonFiniteLossError(
                f"the training loss became NaN or infinite at step {step} (epoch {trainer.current_epoch + 1}; checked "
                f"every trainer.log_every_n_steps={trainer.log_every_n_steps} steps); lower optim.lr, set "
                "trainer.gradient_clip_val, or check the data"
            )
