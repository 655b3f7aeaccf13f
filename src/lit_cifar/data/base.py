"""What every dataset here shares: uint8 images held in memory, a seeded train/val split (or none),
DataLoaders from config or batches cut on the device, and normalization on the device after the batch is
transferred."""

import logging
from collections.abc import Sequence
from typing import Annotated

import lightning.pytorch as pl
import torch
import torchvision.transforms.v2 as T
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_cifar.data.batched import OrderedBatches, ShuffledBatches, augment_batch
from lit_cifar.run.declared import SEED_MAX, OneOf, Range
from lit_cifar.run.errors import UserError
from lit_cifar.run.validation_split import has_validation

log = logging.getLogger(__name__)

MIN_PER_CLASS = 3  # fewer images of a class on either side of a split are warned about


class TensorImageDataset(Dataset):
    """Images as one uint8 N×C×H×W tensor; an optional per-image transform runs on uint8."""

    def __init__(self, images: Tensor, labels: Tensor, transform=None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


def augmentation(image_size: int, rotation: float, translate: int, hflip: bool) -> T.Compose | None:
    """Per-image training augmentation on uint8 tensors: shift by up to `translate` pixels (a random
    crop of the zero-padded image), optional horizontal flip, rotation within ±`rotation` degrees."""
    steps = []
    if translate > 0:
        steps.append(T.RandomCrop(image_size, padding=translate))
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    if rotation > 0:
        steps.append(T.RandomRotation(rotation, interpolation=T.InterpolationMode.BILINEAR))
    return T.Compose(steps) if steps else None


def mixed(value: int) -> int:
    """A 64-bit value whose every bit depends on every bit of `value` (splitmix64's finalizer): a CPU generator
    keeps only the low 32 bits of its seed, which of `seed << 32 | step` would be the step alone."""
    mask = (1 << 64) - 1
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & mask
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & mask
    return value ^ (value >> 31)


# The independent streams of draws of the batched pipeline, each seeded per step or epoch by `stream_seed`.
AUGMENTATION, ORDER, FLIPS = range(3)


def stream_seed(seed: int, stream: int, counter: int) -> int:
    """The generator seed of draw `counter` (a step, an epoch) of one `stream` of a run seeded with `seed`: it
    depends on the three alone, so a resumed run draws what the uninterrupted one did, with no state saved."""
    return mixed(mixed((seed & 0xFFFFFFFF) << 32 | counter) ^ stream)


def seeded_split(n: int, val_size: int | float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of a train/val split that depends only on `seed`, not on the global RNG; `val_size` is a
    number of images or a fraction of the `n` images; 0 holds out none (an empty val split)."""
    count = round(val_size * n) if isinstance(val_size, float) else val_size
    if not (val_size == 0 or 0 < count < n):
        raise UserError(
            f"data.val_size={val_size} holds out {count} of the {n} training images; it must leave at least one "
            "on each side, e.g. data.val_size=0.1 (or 0 for no validation)"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[count:], order[:count]


def warn_thin_classes(labels: Tensor, num_classes: int, split: str, class_names: list[str]) -> None:
    """Warn when a split holds fewer than MIN_PER_CLASS images of some class: its accuracy means little."""
    counts = torch.bincount(labels, minlength=num_classes)
    thin = (counts < MIN_PER_CLASS).nonzero().flatten().tolist()
    if thin:
        names = [class_names[c] if c < len(class_names) else str(c) for c in thin]
        log.warning(
            "the %s split holds fewer than %d images of %d class(es) (%s%s, fewest %d); change data.val_size "
            "(a number or a fraction of the training images) or add images",
            split,
            MIN_PER_CLASS,
            len(thin),
            ", ".join(names[:5]),
            ", …" if len(names) > 5 else "",
            int(counts.min()),
        )


def pixel_statistics(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 N×C×H×W images in [0, 1], from a histogram (no float copy)."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in images.unbind(1):
        counts = torch.bincount(channel.flatten(), minlength=256).double()
        mean = (counts @ values) / counts.sum()
        var = (counts @ (values - mean) ** 2) / counts.sum()
        means.append(float(mean))
        stds.append(max(float(var.sqrt()), 1e-6))  # a blank training set must not divide by zero
    return means, stds


def check_num_classes(source: str, found: int, configured: int | None) -> int:
    """The number of classes `found`, which a `configured` one (None: not set) must equal."""
    if configured is not None and found != configured:
        raise UserError(f"{source} has {found} classes but data.num_classes={configured}; set data.num_classes={found}")
    return found


class ImageDataModule(pl.LightningDataModule):
    """Subclasses implement `load()` returning uint8 images and int64 labels for
    train (to be split), optional val, and test; everything else lives here."""

    def __init__(
        self,
        *,
        num_classes: Annotated[
            int | None,
            Range(2, ints=True, words="an integer ≥ 2, or null to count the classes in the data", example="null"),
        ],
        in_channels: Annotated[int, OneOf(1, 3, words="1 (grayscale) or 3 (RGB)", example="3")],
        image_size: Annotated[int, Range(1, ints=True, words="a positive number of pixels", example="32")],
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: Annotated[int, Range(1, ints=True, words="a positive integer", example="128")] = 128,
        val_size: Annotated[
            int | float,
            Range(
                0,
                ints=True,
                or_fraction=True,
                words="a number of images (e.g. 5000) or a fraction of them (e.g. 0.1), or 0: no validation split",
                example="0.1",
            ),
        ] = 5000,
        split_seed: Annotated[
            int, Range(0, SEED_MAX, ints=True, words="an integer in [0, 4294967295]", example="0")
        ] = 0,
        num_workers: Annotated[int, Range(0, ints=True, words="an integer ≥ 0", example="2")] = 2,
        pin_memory: bool = True,
        persistent_workers: bool = False,
        rotation: Annotated[float, Range(0, 180, words="degrees in [0, 180]", example="10")] = 10.0,
        translate: Annotated[int, Range(0, ints=True, words="a number of pixels ≥ 0", example="4")] = 4,
        hflip: bool = True,
        alternate_flips: bool = False,
        shift_padding: Annotated[
            str, OneOf("zeros", "reflect", words="one of zeros, reflect", example="zeros")
        ] = "zeros",
        pipeline: Annotated[
            str,
            OneOf(
                "loader",
                "batched",
                words="'loader' (per-image augmentation in DataLoader workers) or 'batched' (whole batches augmented "
                "on the device)",
                example="loader",
            ),
        ] = "loader",
    ) -> None:
        super().__init__()  # the values are checked at the start, before torch loads (lit_cifar.run.validate)
        if translate >= image_size:
            raise UserError(
                f"data.translate={translate} shifts images by as much as their whole size (data.image_size="
                f"{image_size}); shift by fewer pixels, e.g. data.translate=4"
            )
        if alternate_flips and not hflip:
            raise UserError("data.alternate_flips=true flips images, which data.hflip=false forbids; set one of them")
        if pipeline == "loader" and (alternate_flips or shift_padding != "zeros"):
            raise UserError(
                "data.alternate_flips and data.shift_padding=reflect exist in the batched pipeline only; "
                "set data.pipeline=batched or leave them at false and zeros"
            )
        self.num_classes, self.in_channels, self.image_size = num_classes, in_channels, image_size
        self.mean, self.std = list(mean), list(std)
        self.batch_size, self.val_size, self.split_seed = batch_size, val_size, split_seed
        self.num_workers, self.pin_memory, self.persistent_workers = num_workers, pin_memory, persistent_workers
        self.rotation, self.translate, self.hflip = rotation, translate, hflip
        self.alternate_flips, self.shift_padding = alternate_flips, shift_padding
        self.pipeline = pipeline
        self._augment_rng: torch.Generator | None = None
        self.class_names: list[str] = []
        self._stats_on_device: dict[torch.device, Tensor] = {}
        self.train_set = self.val_set = self.test_set = None

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        """Return {"train": (images, labels)} and optionally "val" and "test" (without one, the val split
        is tested); set self.class_names."""
        raise NotImplementedError

    def count_classes(self) -> int:
        """The number of classes the data holds, found without reading the images (`data.num_classes=null`)."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        splits = self.load()
        images, labels = splits["train"]
        validation = has_validation(self.val_size)  # without: every training image is trained on
        val = splits.get("val") if validation else None
        if val is None and validation:
            train_idx, val_idx = seeded_split(len(labels), self.val_size, self.split_seed)
            val = images[val_idx], labels[val_idx]
            images, labels = images[train_idx], labels[train_idx]
            for split, split_labels in (("train", labels), ("validation", val[1])):
                warn_thin_classes(split_labels, self.num_classes, split, self.class_names)
        test = splits.get("test", val)
        if test is None:
            raise UserError(
                "data.val_size=0 leaves nothing to test: this dataset has no test split, so the held-out "
                "images are its test set; hold some out, e.g. data.val_size=0.1"
            )
        device = torch.device("cpu")  # the per-image loader's workers read the images on the host
        if self.pipeline == "batched":  # every split on the training device, cut into batches there
            device = self.trainer.strategy.root_device if self.trainer is not None else device
            self.train_set = TensorImageDataset(images.to(device), labels.to(device))
        else:
            train_transform = augmentation(self.image_size, self.rotation, self.translate, self.hflip)
            self.train_set = TensorImageDataset(images, labels, train_transform)
        self.val_set = None if val is None else TensorImageDataset(*(t.to(device) for t in val))
        self.test_set = self.val_set if test is val else TensorImageDataset(*(t.to(device) for t in test))

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def _evaluation_loader(self, dataset: TensorImageDataset) -> DataLoader | OrderedBatches:
        if self.pipeline == "loader":
            return self._loader(dataset, shuffle=False)
        return OrderedBatches(dataset.images, dataset.labels, self.batch_size)

    def train_dataloader(self) -> DataLoader | ShuffledBatches:
        if self.pipeline == "loader":
            return self._loader(self.train_set, shuffle=True)
        seed = torch.initial_seed()  # seed_everything's; the draws of an epoch depend on it and the epoch only
        images = self.train_set.images
        flips = None
        if self.alternate_flips:  # each image's orientation in even epochs, drawn once
            generator = torch.Generator(images.device).manual_seed(stream_seed(seed, FLIPS, 0))
            flips = torch.rand(len(images), generator=generator, device=images.device) < 0.5
        strategy = self.trainer.strategy if self.trainer is not None else None
        return ShuffledBatches(
            images,
            self.train_set.labels,
            self.batch_size,
            seed_of=lambda epoch: stream_seed(seed, ORDER, epoch),
            flips=flips,
            rank=strategy.global_rank if strategy is not None else 0,
            world_size=strategy.world_size if strategy is not None else 1,
        )

    def val_dataloader(self) -> DataLoader | OrderedBatches | list:
        if self.val_set is None:
            return []  # data.val_size=0: Lightning skips validation
        return self._evaluation_loader(self.val_set)

    def test_dataloader(self) -> DataLoader | OrderedBatches:
        return self._evaluation_loader(self.test_set)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 N×C×H×W → float32 normalized with the dataset's mean and std, on images' device."""
        if images.device not in self._stats_on_device:  # one host→device copy per device, not per batch
            stats = torch.tensor([self.mean, self.std], device=images.device).view(2, 1, -1, 1, 1)
            self._stats_on_device[images.device] = stats
        mean, std = self._stats_on_device[images.device]
        return (images.float().div_(255) - mean).div_(std)

    def augment(self, images: Tensor, step: int) -> Tensor:
        """The batched pipeline's training augmentation of training step `step`, drawn from a generator on
        images' device seeded from the global seed and the step: a resumed run draws what an uninterrupted
        one would, with no generator state to save."""
        if self._augment_rng is None or self._augment_rng.device != images.device:
            self._augment_rng = torch.Generator(images.device)
        self._augment_rng.manual_seed(stream_seed(torch.initial_seed(), AUGMENTATION, step))
        random_flips = self.hflip and not self.alternate_flips  # alternating flips come with the batch
        return augment_batch(
            images, self.rotation, self.translate, random_flips, self._augment_rng, padding=self.shift_padding
        )

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int):
        images, labels = batch
        if self.pipeline == "batched" and self.trainer is not None and self.trainer.training:
            images = self.augment(images, self.trainer.global_step)
        images = self.normalize(images)
        if self.trainer is not None:  # trainer.precision=…-true: Lightning cast the batch while it was still uint8
            images = self.trainer.precision_plugin.convert_input(images)
        return images, labels

    def state_dict(self) -> dict:
        return {"class_names": self.class_names, "mean": self.mean, "std": self.std}
