"""CIFAR-10 read from the official python pickle layout (`cifar-10-batches-py/`)."""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity

from lit_cifar.data import numpy_pickle
from lit_cifar.data.base import ImageDataModule
from lit_cifar.run.errors import UserError

# Per-channel statistics of the 50k training images.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


ROW = 3 * 32 * 32  # one image's values in a batch's `data`: 1024 red, then green, then blue


def unpickle(path: Path) -> dict:
    """The pickle at `path`, read as data: code it names is refused, never run."""
    if path.is_dir():
        raise UserError(f"{path} is a folder where the CIFAR-10 batch file should be; put the file there instead")
    if not path.is_file():
        raise UserError(f"{path} is missing; restore the '{path.parent.name}' folder or set data.root to a full copy")
    try:
        with open(path, "rb") as f:
            return numpy_pickle.load(f)
    except numpy_pickle.Refused as refused:
        raise UserError(f"{path} holds code ({refused}), not CIFAR-10 data; replace it with a good copy") from None
    except Exception as err:
        raise UserError(f"{path} is not a readable CIFAR-10 file ({err}); replace it with a good copy") from None


def read_official(path: Path, md5: str, verify_checksum: bool) -> dict:
    """The pickle at `path`, its checksum compared with the official file's first when `verify_checksum`."""
    if verify_checksum and path.is_file() and not check_integrity(str(path), md5):
        raise UserError(
            f"{path} does not match the official CIFAR-10 checksum; if it is a custom copy, set "
            f"data.verify_checksums=false, else replace {path.parent} with a fresh copy of the official archive"
        )
    return unpickle(path)


def batch_contents(entry: dict, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch's images as uint8 N×3×32×32 and its labels, refusing what would be read wrongly: pixels that
    are not bytes (a float batch in [0, 1] would become black images), rows that are not one image each,
    labels outside the classes."""
    data, labels = entry["data"], np.asarray(entry["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"its pixels are {kind}, not uint8 values 0-255")
    if data.ndim != 2 or data.shape[1] != ROW:
        raise ValueError(f"its data has shape {data.shape}, not (images, {ROW}) for 3×32×32 images")
    if labels.ndim != 1 or len(labels) != len(data):
        raise ValueError(f"{len(data)} images but {labels.size} labels")
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= num_classes):
        bad = next(x for x in labels.tolist() if not (isinstance(x, int) and 0 <= x < num_classes))
        raise ValueError(f"label {bad!r} is not a class index in [0, {num_classes})")
    return data.reshape(-1, 3, 32, 32), labels


def read_batches(
    folder: Path, files: list[list[str]], verify_checksums: bool, num_classes: int
) -> tuple[Tensor, Tensor]:
    """Read pickled CIFAR batches into uint8 N×3×32×32 images and int64 labels."""
    images, labels = [], []
    for name, md5 in files:
        path = folder / name
        entry = read_official(path, md5, verify_checksums)
        try:
            batch, batch_labels = batch_contents(entry, num_classes)
        except Exception as err:
            raise UserError(f"{path} is not a CIFAR-10 batch ({err}); replace it with a good copy") from None
        images.append(batch)
        labels.append(batch_labels)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels).astype(np.int64))


class CIFAR10DataModule(ImageDataModule):
    def __init__(self, root: str = "data", download: bool = True, verify_checksums: bool = True, **kwargs) -> None:
        kwargs.setdefault("mean", CIFAR10_MEAN)
        kwargs.setdefault("std", CIFAR10_STD)
        super().__init__(**kwargs)
        if (self.num_classes or 10, self.in_channels, self.image_size) != (10, 3, 32):
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
        if self.root.exists() and not self.root.is_dir():
            raise UserError(
                f"data.root={self.root} is a file; set data.root to the folder that holds (or will hold) "
                f"'{CIFAR10.base_folder}'"
            )
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

    def read_class_names(self) -> list[str]:
        meta = self.folder / CIFAR10.meta["filename"]
        entry = read_official(meta, CIFAR10.meta["md5"], self.verify_checksums)
        names = entry.get(CIFAR10.meta["key"]) if isinstance(entry, dict) else None
        if not isinstance(names, list | tuple) or not names:
            raise UserError(
                f"{meta} holds no list of class names under '{CIFAR10.meta['key']}'; replace it with a good copy"
            )
        return [str(name) for name in names]

    def count_classes(self) -> int:
        self.prepare_data()
        return len(self.read_class_names())

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        if not self.folder.is_dir():
            self.prepare_data()
        self.class_names = self.read_class_names()
        meta = self.folder / CIFAR10.meta["filename"]
        if len(self.class_names) != 10:  # data.num_classes cannot follow: CIFAR-10's is 10
            raise UserError(
                f"{meta} names {len(self.class_names)} classes, but CIFAR-10 has 10; replace it with a good copy "
                "(for a dataset of other classes, use data=chars)"
            )
        self.num_classes = n = 10
        return {
            "train": read_batches(self.folder, CIFAR10.train_list, self.verify_checksums, n),
            "test": read_batches(self.folder, CIFAR10.test_list, self.verify_checksums, n),
        }
