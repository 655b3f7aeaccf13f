"""Images in TensorBoard: what the model is trained on, and at test what it gets wrong."""

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from lit_cifar.callbacks.figures import confusion_figure, image_grid


def _denormalize(images: Tensor, datamodule: pl.LightningDataModule) -> Tensor:
    mean = torch.tensor(datamodule.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(datamodule.std, device=images.device).view(1, -1, 1, 1)
    return images.float() * std + mean


class ImageSummary(Callback):
    """`train/images`: the first training batch of the fit as the model receives it (augmented, shown
    denormalized) with its labels. At test, `test/confusion_matrix` (titled with the accuracy and the
    checkpoint tested) and `test/mistakes`: the `mistakes` wrong predictions made with the highest confidence,
    with the true and the predicted class. Only TensorBoard loggers get them.

    The test step returns nothing, so the predictions are computed again from the test batches here (one
    more forward pass of the test set, with test-time augmentation when the module uses it)."""

    def __init__(self, train_images: int = 32, mistakes: int = 24) -> None:
        self.train_images, self.mistakes = train_images, mistakes
        self._shown_training = False
        self._counts: Tensor | None = None
        self._worst: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # confidence, images, true, predicted

    @staticmethod
    def _writers(trainer: pl.Trainer) -> list:
        return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self._shown_training or not trainer.is_global_zero or not self._writers(trainer):
            return
        self._shown_training = True
        images, labels = batch[0][: self.train_images], batch[1][: self.train_images]
        names = trainer.datamodule.class_names
        figure = image_grid(
            _denormalize(images, trainer.datamodule),
            [names[i] for i in labels.tolist()],
            suptitle=f"training images after augmentation (epoch {trainer.current_epoch + 1})",
        )
        for writer in self._writers(trainer):
            writer.add_figure("train/images", figure, trainer.global_step)

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._counts, self._worst = None, None

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, *args) -> None:
        logits, labels = outputs, batch[1]  # test_step's logits, one per label
        images = batch[0][: len(labels)]  # the batched pipeline pads the last batch's images
        n = len(trainer.datamodule.class_names)
        confidence, predicted = logits.softmax(1).max(1)
        counts = torch.bincount(labels * n + predicted, minlength=n * n).view(n, n)
        self._counts = counts if self._counts is None else self._counts + counts
        wrong = predicted != labels
        batch_worst = (confidence[wrong], images[wrong], labels[wrong], predicted[wrong])
        if self._worst is not None:
            batch_worst = tuple(torch.cat(pair) for pair in zip(self._worst, batch_worst, strict=True))
        keep = batch_worst[0].topk(min(self.mistakes, len(batch_worst[0]))).indices
        self._worst = tuple(part[keep] for part in batch_worst)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._counts is None or not trainer.is_global_zero or not self._writers(trainer):
            return
        names = trainer.datamodule.class_names
        counts = self._counts.cpu()
        accuracy = counts.diag().sum().item() / max(1, counts.sum().item())
        checkpoint = Path(trainer.ckpt_path).name if trainer.ckpt_path else "the weights at the end of fitting"
        title = f"test accuracy {accuracy:.4f} on {counts.sum().item()} images, {checkpoint}"
        figures = {"test/confusion_matrix": confusion_figure(counts, names, title)}
        confidence, images, true, predicted = (part.cpu() for part in self._worst)
        if len(images):
            labels = zip(confidence.tolist(), true.tolist(), predicted.tolist(), strict=True)
            figures["test/mistakes"] = image_grid(
                _denormalize(images, trainer.datamodule),
                [f"{names[t]} → {names[p]}\n{c:.2f}" for c, t, p in labels],
                suptitle="the most confident mistakes: true → predicted, confidence",
            )
        for writer in self._writers(trainer):
            for tag, figure in figures.items():
                writer.add_figure(tag, figure, trainer.global_step)
