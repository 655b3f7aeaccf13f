"""`python -m lit_cifar.predict ckpt_path=… images=<files, folders or test:0-9>`: the top-k classes of each image,
with the checkpoint's own class names and normalization; `test:0-9` takes images of the test split of the data the
checkpoint was trained on, each shown beside its true class."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image, UnidentifiedImageError

from lit_cifar.data.images import grayscale, rgb
from lit_cifar.run.errors import UserError, exit_on_user_error, run_app
from lit_cifar.run.validate import check_values, integer
from lit_cifar.sweep.resolvers import register
from lit_cifar.training.restore import (
    load_datamodule,
    load_test_split,
    trained_checkpoint,
    trained_logits,
)

if TYPE_CHECKING:
    import torch

    from lit_cifar.data.base import ImageDataModule

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
SPLIT_SPEC = re.compile(r"([A-Za-z]\w*):(.*)")  # test:0-9
INDICES = re.compile(r"(\d+)(?:-(\d+))?")  # 3, or 0-9 with both ends included
EXAMPLE = "e.g. images=test:0-9"

register()


def test_indices(name: str) -> range | None:
    """The indices of the test split that `test:3` or `test:0-9` names; None for the name of a file or folder."""
    if Path(name).exists():
        return None
    if INDICES.fullmatch(name):
        raise UserError(f"images={name} is no file; for test images by index, name the split, e.g. images=test:{name}")
    spec = SPLIT_SPEC.fullmatch(name)
    if spec is None:
        return None
    split, numbers = spec.groups()
    if split != "test":
        raise UserError(f"images={name} names the {split} split; predict reads the test split only, {EXAMPLE}")
    indices = INDICES.fullmatch(numbers)
    if indices is None:
        raise UserError(f"images={name} names no test images; give an index or a range of them, {EXAMPLE}")
    first, last = int(indices[1]), int(indices[2] or indices[1])
    if first > last:
        raise UserError(f"images={name} runs backwards; give the first index first, e.g. images=test:{last}-{first}")
    return range(first, last + 1)


def image_sources(images: str | list | None) -> list[Path | tuple[str, range]]:
    """The files named, each folder replaced by its image files in name order, and the test-split indices that
    each `test:…` names (with its name), in the order given."""
    if images in (None, "", []):
        raise UserError(
            "pass the images to classify: images=cat.png, images=folder/, images=[a.png,b.jpg], or images=test:0-9 "
            "(the checkpoint's own test images)"
        )
    sources = []
    for name in map(str, images if isinstance(images, list) else [images]):
        path = Path(name)
        if (indices := test_indices(name)) is not None:
            sources.append((name, indices))
        elif path.is_dir():  # a FIFO or device named x.png is passed over: opening one could wait forever
            sources += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            sources.append(path)
        elif path.exists():
            raise UserError(f"{path} is not a regular file (a FIFO, socket or device); pass image files in images=")
        else:
            raise UserError(f"{path} does not exist; pass image files or folders in images=, or test images, {EXAMPLE}")
    if not sources:
        raise UserError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in images={images}")
    return sources


def read_image(path: Path, channels: int, size: int) -> torch.Tensor:
    """uint8 channels×size×size, the layout the net was trained on, from the 8-bit picture the file shows."""
    import torch
    import torchvision.transforms.v2.functional as F

    try:
        with Image.open(path) as image:
            pixels = torch.from_numpy(rgb(image) if channels == 3 else grayscale(image)[..., None])
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        reason = err if isinstance(err, ValueError) else type(err).__name__  # Pillow's other messages repeat the path
        raise UserError(
            f"{path} is not an image that can be read ({reason}); remove it from images= or convert it to PNG or JPEG"
        ) from None
    return F.resize(pixels.permute(2, 0, 1), [size, size], antialias=True)


def test_images(name: str, indices: range, datamodule: ImageDataModule) -> list[tuple[str, torch.Tensor]]:
    """(`test:3 (true cat)`, its uint8 image) for each index of the datamodule's test split, which is read."""
    test_set = datamodule.test_set
    if indices.stop > len(test_set):
        raise UserError(
            f"images={name} reaches past the test split, which holds {len(test_set)} images "
            f"(test:0-{len(test_set) - 1}); {EXAMPLE}"
        )
    labels = test_set.labels[indices.start : indices.stop].tolist()
    return [
        (f"test:{index} (true {datamodule.class_names[label]})", test_set.images[index])
        for index, label in zip(indices, labels, strict=True)
    ]


def predict(cfg: DictConfig) -> list[tuple[str, list[tuple[str, float]]]]:
    """Each image's name (its file, or `test:3 (true cat)`) and its top-k classes with their probabilities; torch is
    imported once the input passed its checks (`--help` and a bad key or value answer at once)."""
    if not integer(cfg.top_k) or cfg.top_k < 1:
        raise UserError(f"top_k={cfg.top_k} must be a whole number of classes, 1 or more, e.g. top_k=3")
    data_overrides = {key: value for key, value in cfg.data.items() if value is not None}  # null: the checkpoint's
    check_values(OmegaConf.create({"data": data_overrides}))
    sources = image_sources(OmegaConf.to_container(cfg.images) if isinstance(cfg.images, ListConfig) else cfg.images)
    path, ckpt = trained_checkpoint(cfg.ckpt_path, "predict with")
    return classified(sources, path, ckpt, data_overrides, cfg.device, cfg.top_k)


def classified(
    sources: list[Path | tuple[str, range]], path: Path, ckpt: dict, data_overrides: dict, device: str, k: int
) -> list[tuple[str, list[tuple[str, float]]]]:
    """Each source's images by name, with the top `k` classes that the checkpoint's net gives them."""
    import torch

    logits_of, on = trained_logits(ckpt, path, device)
    if any(isinstance(source, tuple) for source in sources):  # only test images need the data set itself
        datamodule = load_test_split(ckpt, path, "predict", **data_overrides)
    else:
        datamodule = load_datamodule(ckpt, path)
    named = []
    for source in sources:
        if isinstance(source, tuple):
            named += test_images(*source, datamodule)
        else:
            named.append((str(source), read_image(source, datamodule.in_channels, datamodule.image_size)))
    with torch.inference_mode():
        images = torch.stack([image for _, image in named])
        probabilities = logits_of(datamodule.normalize(images.to(on))).softmax(dim=1)
        top = probabilities.topk(min(k, len(datamodule.class_names)), dim=1)
    return [
        (name, [(datamodule.class_names[c], p) for c, p in zip(classes, probs, strict=True)])
        for (name, _), classes, probs in zip(named, top.indices.tolist(), top.values.tolist(), strict=True)
    ]


@hydra.main(version_base="1.3", config_path="../../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        for image, classes in predict(cfg):
            print(f"{image}: " + ", ".join(f"{name} {probability:.3f}" for name, probability in classes))


if __name__ == "__main__":
    run_app(main)
