"""The one LightningModule: wraps any classification net, owns the loss, metrics and optimizers."""

import warnings
from collections.abc import Callable
from typing import Annotated

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from lit_cifar.data.batched import unpadded
from lit_cifar.run.declared import OneOf, Range
from lit_cifar.training.tta import tta_logits


class LitClassifier(pl.LightningModule):
    """`optimizer` and `scheduler` are partials (Hydra `_partial_: true`) completed here with the
    parameters. Schedulers stepped per batch (`scheduler_interval: step`) also get `total_steps`."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_interval: Annotated[
            str, OneOf("epoch", "step", words="'epoch' or 'step'", example="scheduler=onecycle")
        ] = "epoch",
        num_classes: int = 10,
        label_smoothing: Annotated[float, Range(0, 1, high_open=True, words="a number in [0, 1)", example="0.1")] = 0.0,
        compile: bool = False,
        tta: bool = False,
        tta_flip: bool = True,
    ) -> None:
        super().__init__()  # the values from the config are checked at the start (lit_cifar.run.validate)
        # The partials stay out of the checkpoint; the run's whole config goes in instead (`run_config`).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net, self.optimizer, self.scheduler = net, optimizer, scheduler
        self.run_config: dict = {}
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # torchmetrics checks its inputs on the host by default (a NaN test, torch.unique of the labels): a
        # GPU sync in every step. The labels come from the datamodule and FiniteLossCheck watches the loss.
        self.train_loss, self.val_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(3))
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(3)
        )
        self.val_acc_best = MaxMetric()
        # The images each validation and test epoch measured accuracy on, summed over the ranks of a ddp run: what
        # the run's record gives as `images`. Lightning's DistributedSampler gives every rank ceil(N / ranks) of a
        # split's N images, repeating a few to even them out; the accuracy counts those repeats, and so does this.
        self.val_images, self.test_images = SumMetric(nan_strategy="disable"), SumMetric(nan_strategy="disable")
        self.images_measured: dict[str, int] = {}  # {"val": …, "test": …}, of the last epoch of each
        self.val_acc_best.persistent(True)  # in the checkpoint, so a resumed run keeps the best of before
        self.replan_schedule = False  # the restored checkpoint planned for fewer epochs (see on_load_checkpoint)

    def setup(self, stage: str) -> None:
        # channels_last: faster convolutions and pooling on a GPU (tensor cores) and on a CPU too (oneDNN: 1.2-1.5x
        # per step for most nets here, 1.55x for fast_cnn), for one copy of each batch in `forward`.
        self.net.to(memory_format=torch.channels_last)
        if self.hparams.compile and not getattr(self, "_compiled", False):
            self.net.compile()  # in place: state_dict keys stay the same as the uncompiled net's
            self._compiled = True
        if self.hparams.compile:
            # Lightning validates in fit under no_grad but tests under inference_mode, whose tensors the compiled
            # net would build a second evaluation graph for: evaluate under no_grad throughout.
            for loop in (self.trainer.validate_loop, self.trainer.test_loop, self.trainer.predict_loop):
                loop.inference_mode = False

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images.contiguous(memory_format=torch.channels_last))

    def _step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        images, labels = batch
        if self.hparams.tta and not self.training:  # validation and test: weighted flipped/shifted views
            logits = tta_logits(self, images, flip=self.hparams.tta_flip)
        else:
            logits = self(images)
        logits = unpadded(logits, labels)  # the batched pipeline pads the last evaluation batch's images
        return self.criterion(logits, labels), logits, labels

    # The steps only update the metrics, on the device; the epoch hooks compute and log them once. Logging a
    # metric in every step would cost Lightning about a millisecond per call on the host (bench figure 2).
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits, labels = self._step(batch)
        self.train_loss.update(loss)
        self.train_acc.update(logits, labels)
        # Only in the steps whose logs Lightning writes (every trainer.log_every_n_steps): logged in every step, it
        # cost about 0.8 ms of host time per step on a 2-core CPU. A tensor, not a float: no sync when logged either.
        if self.trainer._logger_connector.should_update_logs:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._step(batch)
        self.val_loss.update(loss.expand(len(labels)))  # one value per image: the last batch may hold fewer
        self.val_acc.update(logits, labels)
        self.val_images.update(torch.full((), len(labels), device=labels.device))  # no host-to-device copy

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits, labels = self._step(batch)
        self.test_loss.update(loss.expand(len(labels)))
        self.test_acc.update(logits, labels)
        self.test_images.update(torch.full((), len(labels), device=labels.device))
        return logits  # for the callbacks that draw the test (callbacks.images)

    def _log_epoch(self, stage: str, loss: MeanMetric, acc: MulticlassAccuracy) -> Tensor:
        values = {f"{stage}/loss": loss.compute(), f"{stage}/acc": acc.compute()}
        loss.reset()
        acc.reset()
        self.log_dict(values, prog_bar=stage != "test")
        return values[f"{stage}/acc"]

    def _count_images(self, stage: str, images: SumMetric) -> None:
        count = int(images.compute())  # every rank's, in each rank
        images.reset()
        if count and not self.trainer.sanity_checking:  # the check's few batches are not what the run measured on
            self.images_measured[stage] = count

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", self.train_loss, self.train_acc)

    def on_validation_epoch_end(self) -> None:
        acc = self._log_epoch("val", self.val_loss, self.val_acc)
        self._count_images("val", self.val_images)
        if not self.trainer.sanity_checking:  # the untrained net's accuracy is no one's best
            self.val_acc_best.update(acc)
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_loss, self.test_acc)
        self._count_images("test", self.test_images)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["run_config"] = self.run_config
        checkpoint["images_measured"] = self.images_measured  # a resumed run with no epoch left to run

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.images_measured = dict(checkpoint.get("images_measured", {}))
        # The checkpoint says how long a run its schedule was planned for: a run extended on resume, killed
        # before its first extended epoch was saved, is re-planned again when it goes on.
        planned = checkpoint.get("run_config", {}).get("trainer", {}).get("max_epochs")
        self.replan_schedule = planned != self.run_config.get("trainer", {}).get("max_epochs", planned)

    def best_val_acc(self) -> float | None:
        """The best validation accuracy so far, this attempt's and (restored from the checkpoint) before."""
        best = float(self.val_acc_best.max_value)
        return best if best > float("-inf") else None

    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        if self.hparams.scheduler_interval == "step":
            return self.scheduler(optimizer=optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return self.scheduler(optimizer=optimizer)

    def configure_optimizers(self):
        optimizer = self.optimizer(self)  # training.optim.build_optimizer: it groups the parameters by layer type
        if self.scheduler is None:
            return optimizer
        scheduler = {"scheduler": self._make_scheduler(optimizer), "interval": self.hparams.scheduler_interval}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_train_start(self) -> None:
        # A run extended on resume (trainer.max_epochs raised) follows the schedule planned for its new length
        # from the step it reached, instead of the restored one (a finished cosine would climb from 0 again).
        if not self.replan_schedule:
            return
        for config in self.trainer.lr_scheduler_configs:
            optimizer = config.scheduler.optimizer
            for group in optimizer.param_groups:  # chained schedules (cosine, step) step from the group's lr
                group["lr"] = group["initial_lr"]
            replanned = self._make_scheduler(optimizer)
            with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": a replay, on purpose
                warnings.simplefilter("ignore", UserWarning)
                for _ in range(config.scheduler.last_epoch):
                    replanned.step()
            config.scheduler = replanned
