"""Augmentation of a whole batch at once with tensor ops, on whatever device the batch is on.

`augment_batch` draws the same distribution as the per-image path (`base.augmentation`: RandomCrop of the
zero-padded image → RandomHorizontalFlip → bilinear RandomRotation), as one affine resampling per batch."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def augment_batch(
    images: Tensor, rotation: float, translate: int, hflip: bool, generator: torch.Generator | None = None
) -> Tensor:
    """uint8 N×C×H×W → float32 in [0, 255]: each image shifted by a whole number of pixels in
    [-translate, translate] per axis (zero fill), flipped left-right with p=0.5 if `hflip`, and rotated
    by an angle uniform in ±`rotation` degrees (bilinear, zero fill). `generator` must live on images' device."""
    n, _, height, width = images.shape
    images = images.float()
    if translate == 0 and not hflip and rotation == 0:
        return images

    def uniform(low: float, high: float) -> Tensor:
        return torch.rand(n, generator=generator, device=images.device) * (high - low) + low

    def shift(size: int) -> Tensor:  # pixels → affine_grid's [-1, 1] coordinates (align_corners=False)
        pixels = torch.randint(-translate, translate + 1, (n,), generator=generator, device=images.device)
        return pixels * (2.0 / size)

    # theta maps output coordinates to input ones: rotate, then flip (x → -x), then undo the shift.
    angle = uniform(-rotation, rotation) * (math.pi / 180)
    flip = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if hflip else torch.ones(n, device=images.device)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [torch.stack([flip * cos, -flip * sin, -shift(width)], 1), torch.stack([sin, cos, -shift(height)], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def tta_views(images: Tensor, flip: bool) -> list[Tensor]:
    """Test-time views of a normalized batch: as is and shifted one pixel down-right (reflect-padded, so no
    black border appears), and with `flip` both of them mirrored left-right too."""
    shifted = F.pad(images, (1, 0, 1, 0), mode="reflect")[..., :-1, :-1]
    views = [images, shifted]
    return views + [view.flip(-1) for view in views] if flip else views
