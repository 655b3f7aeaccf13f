from typing import Annotated

import torch
from torch import nn

from lit_cifar.run.declared import Range
from lit_cifar.run.errors import UserError

# A dropout probability, the type of every model's `dropout` (checked at the start: lit_cifar.run.validate).
DropoutRate = Annotated[float, Range(0, 1, high_open=True, words="a probability in [0, 1)", example="0.2")]


@torch.no_grad()
def output_of(module: nn.Module, in_channels: int, image_size: int) -> torch.Tensor:
    """What `module` gives for one blank image, in eval mode (batch norm cannot train on one image); a size
    too small for its pooling is the user's `data.image_size`, refused in one line."""
    was_training = module.training
    module.eval()
    try:
        return module(torch.zeros(1, in_channels, image_size, image_size))
    except RuntimeError as err:
        raise UserError(
            f"the model cannot take data.image_size={image_size} ({in_channels}×{image_size}×{image_size} images: "
            f"{str(err).splitlines()[0]}); raise data.image_size or pick another model"
        ) from None
    finally:
        module.train(was_training)


def flat_size(features: nn.Module, in_channels: int, image_size: int) -> int:
    """Number of features `features` produces for one image, so no model hard-codes a flatten size."""
    return output_of(features, in_channels, image_size).flatten(1).shape[1]


class GlobalAvgPool(nn.Module):
    """N×C×H×W → N×C×1×1, the mean over each map: AdaptiveAvgPool2d(1)'s numbers, with a backward that has a
    deterministic CUDA kernel (the adaptive one has none, so `trainer.deterministic=true` failed on a GPU)."""

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3), keepdim=True)
