"""Grayscale character images from a folder (`data=chars`), e.g. the set `make_chars` renders.

Layout under `data.root`, per split (`train` required, `val` and `test` optional):

    train/<class folder>/*.png     one folder per class, or
    train.csv                      a manifest with columns `path,label` (path relative to root);
                                   a split's CSV takes precedence over its folder

Class folders are named `digit_<c>`, `upper_<C>` or `lower_<c>` (`upper_A`, `lower_a`, `digit_0`), so that
`A` and `a` stay two folders on case-insensitive filesystems; any other folder name is the class name as
it stands. In a CSV the label column holds the class name itself (`A`, `a`).

The classes are those of the training split, in sorted order (for characters: 0-9, A-Z, a-z, report
004's index layout); the names are saved in checkpoints with the datamodule's state. Images of any mode
and size are converted to grayscale and resized to `data.image_size`. The pixel mean and std of the
training images are cached in `root/.lit_cifar_stats.json`, keyed by the training files' paths, sizes and
modification times, and recomputed when those change; nothing else is written into `root`.
"""

import csv
import hashlib
import json
import logging
import re
import stat
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lit_cifar.data.base import ImageDataModule, check_num_classes, pixel_statistics
from lit_cifar.data.images import grayscale
from lit_cifar.run.commands import command
from lit_cifar.run.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
STATS_FILE = ".lit_cifar_stats.json"
FOLDER_PATTERN = re.compile(r"(digit|upper|lower)_(.)")
KIND_CHECKS = {"digit": str.isdigit, "upper": str.isupper, "lower": str.islower}

Entries = list[tuple[Path, str]]  # (image file, class name)


def folder_name(class_name: str) -> str:
    """The class folder for a class name: `upper_A`, `lower_a`, `digit_0`, or the name itself."""
    for kind, check in KIND_CHECKS.items():
        if len(class_name) == 1 and check(class_name):
            return f"{kind}_{class_name}"
    return class_name


def class_of(folder: Path) -> str:
    """Inverse of `folder_name`."""
    match = FOLDER_PATTERN.fullmatch(folder.name)
    if match is None:
        return folder.name
    kind, char = match.groups()
    if not KIND_CHECKS[kind](char):
        raise UserError(f"class folder {folder} does not fit its prefix {kind}_; rename it {folder_name(char)}")
    return char


def visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def folder_entries(split_dir: Path) -> Entries:
    entries = []
    for folder in visible(split_dir):
        if not folder.is_dir():
            raise UserError(f"{folder} is not inside a class folder; move it into {split_dir}/<class>/ or remove it")
        files = visible(folder)
        if not files:
            raise UserError(f"class folder {folder} is empty; add images or remove the folder")
        entries += [(file, class_of(folder)) for file in files]
    return entries


def csv_entries(manifest: Path) -> Entries:
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:  # -sig: as spreadsheet programs save it
            reader = csv.DictReader(f, skipinitialspace=True)  # `path, label` means what `path,label` does
            header = [name.strip() for name in reader.fieldnames or []]
            if not {"path", "label"} <= set(header):
                raise UserError(
                    f"{manifest} is not a `path,label` CSV: its header is `{','.join(header)}`; make its first "
                    "line `path,label`"
                )
            reader.fieldnames = header
            entries = [(manifest.parent / row["path"].strip(), row["label"].strip()) for row in reader]
    except (AttributeError, UnicodeDecodeError, csv.Error) as err:  # a short row's missing value is None
        raise UserError(
            f"{manifest} is not a `path,label` CSV ({type(err).__name__}: {err}); fix its header and rows"
        ) from None
    if any(not label for _, label in entries):
        raise UserError(f"{manifest} has rows with an empty label; give every row its class name")
    return entries


def read_image(path: Path, size: int) -> np.ndarray:
    """One image as a size×size uint8 grayscale array, whatever its mode and size on disk. A FIFO, socket or
    device is refused without being opened: opening one could wait forever."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise UserError(f"{path} cannot be read ({err.strerror}); restore it or remove it from the data") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} is not a regular file (a folder, FIFO, socket or device); move it out of the data")
    try:
        with Image.open(path) as image:
            gray = grayscale(image)
    except Exception as err:
        raise UserError(f"{path} is not a readable image ({err}); replace or remove it") from None
    if gray.shape != (size, size):
        return np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR))
    return gray


class CharsDataModule(ImageDataModule):
    def __init__(self, root: str = "data/chars", **kwargs) -> None:
        super().__init__(mean=[0.0], std=[1.0], **kwargs)  # the training statistics replace these in load()
        if self.in_channels != 1:
            raise UserError(f"character images are grayscale; set data.in_channels=1 (not {self.in_channels})")
        self.root = Path(root)

    def entries(self, split: str) -> Entries | None:
        manifest, folder = self.root / f"{split}.csv", self.root / split
        if manifest.is_file():
            return csv_entries(manifest)
        return folder_entries(folder) if folder.is_dir() else None

    def read(self, entries: Entries, index: dict[str, int]) -> tuple[Tensor, Tensor]:
        images = np.stack([read_image(path, self.image_size) for path, _ in entries])
        labels = [index[name] for _, name in entries]
        return torch.from_numpy(images).unsqueeze(1), torch.tensor(labels, dtype=torch.long)

    def found(self) -> dict[str, Entries]:
        """Each split's (image file, class name) entries; train is required."""
        if not self.root.is_dir():
            raise UserError(
                f"data.root={self.root} is not a folder; point it at your images or make a stand-in "
                f"with `{command('data.make_chars', '--out', str(self.root))}`"
            )
        found = {split: entries for split in SPLITS if (entries := self.entries(split))}
        if "train" not in found:
            raise UserError(
                f"{self.root} has no train/ class folders or train.csv; see the layout in the README "
                "section 'Character data'"
            )
        return found

    def count_classes(self) -> int:
        return len({name for _, name in self.found()["train"]})

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        found = self.found()
        self.class_names = sorted({name for _, name in found["train"]})
        self.num_classes = check_num_classes(f"{self.root / 'train'}", len(self.class_names), self.num_classes)
        for split, entries in found.items():
            unknown = sorted({name for _, name in entries} - set(self.class_names))
            if unknown:
                raise UserError(
                    f"the {split} split of {self.root} has classes the training split lacks "
                    f"({', '.join(unknown)}); add them to train or remove them from {split}"
                )
        index = {name: i for i, name in enumerate(self.class_names)}
        splits = {split: self.read(entries, index) for split, entries in found.items()}
        self.mean, self.std = self.training_statistics(found["train"], splits["train"][0])
        if "test" not in splits:
            log.warning("%s has no test split; test/acc is measured on the validation split", self.root)
        return splits

    def training_statistics(self, entries: Entries, images: Tensor) -> tuple[list[float], list[float]]:
        """Mean and std from the cache when the training files are unchanged, else computed and cached."""
        digest = hashlib.sha256(str(self.image_size).encode())
        for path, _ in entries:
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        fingerprint = digest.hexdigest()
        cache = self.root / STATS_FILE
        try:
            cached = json.loads(cache.read_text())
            if cached["fingerprint"] == fingerprint:
                return cached["mean"], cached["std"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no cache yet, or one we cannot use: compute afresh
        mean, std = pixel_statistics(images)
        try:
            cache.write_text(json.dumps({"fingerprint": fingerprint, "mean": mean, "std": std}))
        except OSError as err:
            log.warning("could not cache the training statistics in %s (%s); computing them each run", cache, err)
        return mean, std
