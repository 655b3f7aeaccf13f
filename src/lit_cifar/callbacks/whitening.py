"""Initialise a net's data-dependent first layer from the training images before training starts."""

import lightning.pytorch as pl
import torch

from lit_cifar.errors import UserError


class PatchWhitening(pl.Callback):
    """Calls `net.whiten_(images)` with up to `num_images` normalized training images (a seeded sample).
    Runs in `setup`, before Lightning restores a checkpoint, so a resumed run keeps its saved weights."""

    def __init__(self, num_images: int = 5000) -> None:
        self.num_images = num_images

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
