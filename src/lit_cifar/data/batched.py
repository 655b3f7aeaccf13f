"""The batched (on-device) pipeline: batches cut from tensors that already live on the training device, and
augmented there as whole batches with tensor ops; no worker processes, no host read in a training step.

`augment_batch` draws the same distribution as the per-image path (`base.augmentation`: RandomCrop of the
padded image → RandomHorizontalFlip → bilinear RandomRotation)."""

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crops(images: Tensor, translate: int, padding: str, generator: torch.Generator | None) -> Tensor:
    """Each float image shifted by a whole number of pixels in [-translate, translate] per axis: a crop of the
    image padded by `translate` pixels of zeros or of its reflection, cut with one gather."""
    n, channels, height, width = images.shape
    padded = F.pad(images, (translate,) * 4, mode="constant" if padding == "zeros" else "reflect")
    top, left = torch.randint(0, 2 * translate + 1, (2, n, 1), generator=generator, device=images.device)
    rows = (top + torch.arange(height, device=images.device))[:, None, :, None]
    cols = (left + torch.arange(width, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    return padded[batch, torch.arange(channels, device=images.device)[None, :, None, None], rows, cols]


def augment_batch(
    images: Tensor,
    rotation: float,
    translate: int,
    hflip: bool,
    generator: torch.Generator | None = None,
    padding: str = "zeros",
) -> Tensor:
    """uint8 N×C×H×W → float32 in [0, 255]: each image shifted by a whole number of pixels in
    [-translate, translate] per axis (`padding` fills the border), flipped left-right with p=0.5 if `hflip`,
    and rotated by an angle uniform in ±`rotation` degrees (bilinear, zero fill). `generator` must live on
    images' device."""
    images = images.float()
    n = len(images)
    if translate > 0:
        images = random_crops(images, translate, padding, generator)
    if hflip:
        flip = torch.rand(n, generator=generator, device=images.device) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if rotation > 0:
        angle = (torch.rand(n, generator=generator, device=images.device) * 2 - 1) * (rotation * math.pi / 180)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return images


class ShuffledBatches:
    """One epoch's training batches of (images, labels) held on the training device: the order is a
    permutation drawn on that device from `seed_of(epoch)`, so a resumed run draws what the uninterrupted run
    did, and whole batches are gathered with slices of it (a remainder smaller than a batch is dropped).
    `flips`: None, or a bool per image: those images are mirrored in even epochs and the others in odd
    epochs (airbench's alternating flips). Each of `world_size` processes takes its share of the order."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        seed_of: Callable[[int], int],
        flips: Tensor | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.images, self.labels, self.seed_of, self.flips = images, labels, seed_of, flips
        self.rank, self.world_size = rank, world_size
        self.per_process = len(labels) // world_size
        self.batch_size = min(batch_size, self.per_process)
        self.epoch = 0
        self.generator = torch.Generator(images.device)

    @property
    def sampler(self) -> "ShuffledBatches":  # where Lightning looks for `set_epoch` at each epoch's start
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_process // self.batch_size

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.generator.manual_seed(self.seed_of(self.epoch))
        order = torch.randperm(len(self.labels), generator=self.generator, device=self.images.device)
        order = order[self.rank :: self.world_size]
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            indices = order[start : start + self.batch_size]
            images = self.images[indices]
            if self.flips is not None:
                flip = self.flips[indices] ^ (self.epoch % 2 == 1)
                images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            yield images, self.labels[indices]


def unpadded(padded: Tensor, labels: Tensor) -> Tensor:
    """The rows of a batch's images, or of their logits, that `labels` label: `OrderedBatches` pads the images."""
    return padded[: len(labels)]


class OrderedBatches:
    """Evaluation batches of (images, labels) held on the device, in order. The last batch's images are
    padded with zeros to the full batch size, so a compiled net sees one shape; its labels are not, and the
    logits of the real images are kept (`unpadded`)."""

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int) -> None:
        self.images, self.labels = images, labels
        self.batch_size = min(batch_size, len(labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.labels), self.batch_size):
            images = self.images[start : start + self.batch_size]
            if len(images) < self.batch_size:
                images = torch.cat([images, images.new_zeros(self.batch_size - len(images), *images.shape[1:])])
            yield images, self.labels[start : start + self.batch_size]
