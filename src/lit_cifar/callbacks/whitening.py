"""Initialise a net's data-dependent first layer from the training images before training starts, and freeze
that layer's bias after its first epochs."""

import lightning.pytorch as pl
import torch
from torch.optim import Optimizer

from lit_cifar.run.errors import UserError


class PatchWhitening(pl.Callback):
    """Calls `net.whiten_(images)` with up to `num_images` normalized training images (a seeded sample).
    Runs in `setup`, before Lightning restores a checkpoint, so a resumed run keeps its saved weights.

    The whitening bias trains for the first `bias_epochs` epochs only (airbench94: 3; null: all run). From then on
    its gradient is dropped before each optimizer step, so the optimizer skips it (no momentum, no weight decay),
    as if it were frozen; its `requires_grad` stays, since changing it would recompile a compiled net."""

    def __init__(self, num_images: int = 5000, bias_epochs: int | None = None) -> None:
        if bias_epochs is not None and not (isinstance(bias_epochs, int) and bias_epochs >= 0):
            raise UserError(
                f"callbacks.patch_whitening.bias_epochs={bias_epochs} must be a number of epochs ≥ 0 or null, e.g. 3"
            )
        self.num_images, self.bias_epochs = num_images, bias_epochs

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not hasattr(pl_module.net, "whiten_"):
            raise UserError(
                f"callbacks.patch_whitening needs a net with a whitening layer such as model=fast_cnn, "
                f"not {type(pl_module.net).__name__}; remove the callback or change the model"
            )
        images = trainer.datamodule.train_set.images
        sample = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[: self.num_images]
        weight = pl_module.net.whiten.weight
        pl_module.net.whiten_(trainer.datamodule.normalize(images[sample.to(images.device)].to(weight.device)))

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        if self.bias_epochs is not None and trainer.current_epoch >= self.bias_epochs:
            pl_module.net.whiten.bias.grad = None
