"""`python -m lit_cifar.predict ckpt_path=… images=<files or folder>`: the top-k classes of each image,
with the checkpoint's own class names and normalization."""

from pathlib import Path

import hydra
import torch
import torchvision.transforms.v2.functional as F
from omegaconf import DictConfig, ListConfig
from PIL import Image, UnidentifiedImageError

from lit_cifar.data.images import grayscale, rgb
from lit_cifar.run.errors import UserError, exit_on_user_error, run_app
from lit_cifar.run.validate import integer
from lit_cifar.sweep.resolvers import register
from lit_cifar.training.restore import load_datamodule, load_net, pick_device, run_logits, trained_checkpoint

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}

register()


def image_files(images: str | list[str] | None) -> list[Path]:
    """The files named, with each folder replaced by its image files in name order."""
    if not images:
        raise UserError("pass the images to classify: images=cat.png, images=folder/ or images=[a.png,b.jpg]")
    files = []
    for name in [images] if isinstance(images, str) else images:
        path = Path(name)
        if path.is_dir():  # a FIFO or device named x.png is passed over: opening one could wait forever
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise UserError(f"{path} is not a regular file (a FIFO, socket or device); pass image files in images=")
        else:
            raise UserError(f"{path} does not exist; pass image files or folders in images=")
    if not files:
        raise UserError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in images={images}")
    return files


def read_image(path: Path, channels: int, size: int) -> torch.Tensor:
    """uint8 channels×size×size, the layout the net was trained on, from the 8-bit picture the file shows."""
    try:
        with Image.open(path) as image:
            pixels = torch.from_numpy(rgb(image) if channels == 3 else grayscale(image)[..., None])
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        reason = err if isinstance(err, ValueError) else type(err).__name__  # Pillow's other messages repeat the path
        raise UserError(
            f"{path} is not an image that can be read ({reason}); remove it from images= or convert it to PNG or JPEG"
        ) from None
    return F.resize(pixels.permute(2, 0, 1), [size, size], antialias=True)


@torch.inference_mode()
def predict(cfg: DictConfig) -> list[tuple[Path, list[tuple[str, float]]]]:
    if not integer(cfg.top_k) or cfg.top_k < 1:
        raise UserError(f"top_k={cfg.top_k} must be a whole number of classes, 1 or more, e.g. top_k=3")
    files = image_files(list(cfg.images) if isinstance(cfg.images, ListConfig) else cfg.images)
    path, ckpt = trained_checkpoint(cfg.ckpt_path, "predict with")
    device = pick_device(cfg.device)
    logits_of = run_logits(ckpt, load_net(ckpt, path).to(device))
    datamodule = load_datamodule(ckpt, path)
    k = min(cfg.top_k, len(datamodule.class_names))
    images = torch.stack([read_image(f, datamodule.in_channels, datamodule.image_size) for f in files])
    probabilities = logits_of(datamodule.normalize(images.to(device))).softmax(dim=1)
    top = probabilities.topk(k, dim=1)
    return [
        (file, [(datamodule.class_names[c], p) for c, p in zip(classes, probs, strict=True)])
        for file, classes, probs in zip(files, top.indices.tolist(), top.values.tolist(), strict=True)
    ]


@hydra.main(version_base="1.3", config_path="../../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        for file, classes in predict(cfg):
            print(f"{file}: " + ", ".join(f"{name} {probability:.3f}" for name, probability in classes))


if __name__ == "__main__":
    run_app(main)
