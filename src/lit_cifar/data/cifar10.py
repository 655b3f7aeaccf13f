"""CIFAR-10 read from the official python pickle layout (`cifar-10-batches-py/`)."""

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity

from lit_cifar.data.base import ImageDataModule
from lit_cifar.errors import UserError

# Per-channel statistics of the 50k training images.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def unpickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing; restore the '{path.parent.name}' folder or set data.root to a full copy")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as err:
        raise UserError(f"{path} is not a readable CIFAR-10 file ({err}); replace it with a good copy") from None


def read_batches(folder: Path, files: list[list[str]], verify_checksums: bool) -> tuple[Tensor, Tensor]:
    """Read pickled CIFAR batches into uint8 N×3×32×32 images and int64 labels."""
    images, labels = [], []
    for name, md5 in files:
        path = folder / name
        if verify_checksums and path.is_file() and not check_integrity(str(path), md5):
            raise UserError(
                f"{path} does not match the official CIFAR-10 checksum; delete {folder} and run again with "
                "data.download=true, or set data.verify_checksums=false if it is a custom copy"
            )
        entry = unpickle(path)
        try:
            batch = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            batch_labels = entry["labels"]
            if len(batch_labels) != len(batch):
                raise ValueError(f"{len(batch)} images but {len(batch_labels)} labels")
        except Exception as err:
            raise UserError(f"{path} is not a CIFAR-10 batch ({err}); replace it with a good copy") from None
        images.append(batch)
        labels.extend(batch_labels)
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


class CIFAR10DataModule(ImageDataModule):
    def __init__(self, root: str = "data", download: bool = True, verify_checksums: bool = True, **kwargs) -> None:
        kwargs.setdefault("mean", CIFAR10_MEAN)
        kwargs.setdefault("std", CIFAR10_STD)
        super().__init__(**kwargs)
        if (self.num_classes, self.in_channels, self.image_size) != (10, 3, 32):
            raise UserError(
                "CIFAR-10 has 10 classes of 3×32×32 images; remove the data.num_classes/"
                "in_channels/image_size overrides"
            )
        self.root, self.download, self.verify_checksums = Path(root), download, verify_checksums

    @property
    def folder(self) -> Path:
        return self.root / CIFAR10.base_folder

    def prepare_data(self) -> None:
        if self.folder.is_dir():
            return
        if not self.download:
            raise UserError(
                f"CIFAR-10 not found in {self.folder}; set data.download=true or put the "
                f"'{CIFAR10.base_folder}' folder under data.root={self.root}"
            )
        try:
            CIFAR10(str(self.root), download=True)
        except Exception as err:
            raise UserError(
                f"could not download CIFAR-10 into {self.root} ({type(err).__name__}); without network, copy "
                f"the '{CIFAR10.base_folder}' folder from {CIFAR10.url} into {self.root} or set data.root"
            ) from None

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        if not self.folder.is_dir():
            self.prepare_data()
        self.class_names = list(unpickle(self.folder / CIFAR10.meta["filename"])[CIFAR10.meta["key"]])
        return {
            "train": read_batches(self.folder, CIFAR10.train_list, self.verify_checksums),
            "test": read_batches(self.folder, CIFAR10.test_list, self.verify_checksums),
        }
