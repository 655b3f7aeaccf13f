"""The one LightningModule: wraps any classification net, owns the loss, metrics and optimizers."""

from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from lit_cifar.data.batched import tta_views
from lit_cifar.errors import UserError


class LitClassifier(pl.LightningModule):
    """`optimizer` and `scheduler` are partials (Hydra `_partial_: true`) completed here with the
    parameters. Schedulers stepped per batch (`scheduler_interval: step`) also get `total_steps`."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_interval: str = "epoch",
        num_classes: int = 10,
        label_smoothing: float = 0.0,
        compile: bool = False,
        tta: bool = False,
        tta_flip: bool = True,
    ) -> None:
        super().__init__()
        lr = getattr(optimizer, "keywords", {}).get("lr")
        if lr is not None and not lr > 0:
            raise UserError(f"optim.lr={lr} must be positive, e.g. optim.lr=1e-3")
        if scheduler_interval not in ("epoch", "step"):
            raise UserError(f"module.scheduler_interval={scheduler_interval!r} must be 'epoch' or 'step'")
        # The partials stay out of the checkpoint; the run's whole config goes in instead (`run_config`).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net, self.optimizer, self.scheduler = net, optimizer, scheduler
        self.run_config: dict = {}
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc_best = MaxMetric()
        self.channels_last = False

    def setup(self, stage: str) -> None:
        # channels_last feeds tensor cores on GPU and only costs a copy on CPU, so it is GPU-only.
        if self.device.type == "cuda" and not self.channels_last:
            self.channels_last = True
            self.net.to(memory_format=torch.channels_last)
        if self.hparams.compile and not getattr(self, "_compiled", False):
            self.net.compile()  # in place: state_dict keys stay the same as the uncompiled net's
            self._compiled = True

    def forward(self, images: Tensor) -> Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def _step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        images, labels = batch
        if self.hparams.tta and not self.training:  # validation and test: average over flipped/shifted views
            views = tta_views(images, flip=self.hparams.tta_flip)
            logits = torch.stack([self(view) for view in views]).mean(0)
        else:
            logits = self(images)
        return self.criterion(logits, labels), logits, labels

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # forget the sanity-check validation

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits, labels = self._step(batch)
        self.train_loss(loss)
        self.train_acc(logits, labels)
        # Tensors, not floats: Lightning converts them only when it writes a log line, so no per-step sync.
        self.log("train/loss_step", loss, on_step=True, on_epoch=False)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.val_loss(loss)
        self.val_acc(logits, labels)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.test_loss(loss)
        self.test_acc(logits, labels)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log("test/acc", self.test_acc, on_step=False, on_epoch=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["run_config"] = self.run_config

    def configure_optimizers(self):
        optimizer = self.optimizer(params=self.parameters())
        if self.scheduler is None:
            return optimizer
        if self.hparams.scheduler_interval == "step":
            scheduler = self.scheduler(optimizer=optimizer, total_steps=self.trainer.estimated_stepping_batches)
        else:
            scheduler = self.scheduler(optimizer=optimizer)
        interval = self.hparams.scheduler_interval
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
