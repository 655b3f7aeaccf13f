"""EMNIST handwritten characters (`data=emnist`), a public stand-in for report 004's private set.

torchvision's files: `data.root/EMNIST/raw/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte`,
downloaded (a 0.5 GB archive) when missing and `data.download=true`. The default split `balanced` has
47 classes of 2,400 training images each: digits, A-Z and the 11 lower-case letters whose shape differs
from their capital (a b d e f g h n q r t), the same idea as `make_chars`'s alphabet.
Images are 28×28, made upright, resized to `data.image_size` when that differs; mean and std come from
the training images.
"""

from pathlib import Path

import torchvision.transforms.v2.functional as F
from torch import Tensor
from torchvision.datasets import EMNIST

from lit_cifar.data.base import ImageDataModule, check_num_classes, pixel_statistics
from lit_cifar.run.errors import UserError


class EMNISTDataModule(ImageDataModule):
    def __init__(self, root: str = "data", split: str = "balanced", download: bool = True, **kwargs) -> None:
        super().__init__(mean=[0.0], std=[1.0], **kwargs)  # the training statistics replace these in load()
        if split not in EMNIST.splits:
            raise UserError(f"data.split={split!r} is not an EMNIST split; use one of {', '.join(EMNIST.splits)}")
        if self.in_channels != 1:
            raise UserError(f"EMNIST images are grayscale; set data.in_channels=1 (not {self.in_channels})")
        found = len(EMNIST.classes_split_dict[split])
        self.num_classes = check_num_classes(f"EMNIST split {split!r}", found, self.num_classes)
        self.root, self.split, self.download = Path(root), split, download

    @property
    def files(self) -> list[Path]:
        raw = self.root / EMNIST.__name__ / "raw"
        return [
            raw / f"emnist-{self.split}-{part}-{kind}-ubyte"
            for part in ("train", "test")
            for kind in ("images-idx3", "labels-idx1")
        ]

    def prepare_data(self) -> None:
        if all(f.is_file() for f in self.files):
            return
        if not self.download:
            raise UserError(
                f"EMNIST not found: {self.files[0]} is missing; set data.download=true or put the "
                f"unzipped emnist-{self.split}-* files from {EMNIST.url} into {self.files[0].parent}"
            )
        try:
            EMNIST(str(self.root), self.split, download=True)
        except Exception as err:
            raise UserError(
                f"could not download EMNIST into {self.root} ({type(err).__name__}); without network, put the "
                f"unzipped emnist-{self.split}-* files from {EMNIST.url} into {self.files[0].parent}"
            ) from None

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        try:
            dataset = EMNIST(str(self.root), self.split, train=train)
        except Exception as err:
            raise UserError(
                f"the EMNIST files in {self.files[0].parent} are unreadable ({type(err).__name__}: "
                f"{err}); delete them and run again with data.download=true"
            ) from None
        images = dataset.data.transpose(1, 2).unsqueeze(1)  # EMNIST stores images transposed
        if images.shape[-1] != self.image_size:
            images = F.resize(images, [self.image_size, self.image_size], antialias=True)
        self.class_names = list(dataset.classes)
        return images, dataset.targets.long()

    def count_classes(self) -> int:
        return self.num_classes  # the split's, set in __init__

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        self.prepare_data()
        splits = {"train": self.read(train=True), "test": self.read(train=False)}
        self.mean, self.std = pixel_statistics(splits["train"][0])
        return splits
