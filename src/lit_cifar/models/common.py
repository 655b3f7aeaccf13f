import torch
from torch import nn


def flat_size(features: nn.Module, in_channels: int, image_size: int) -> int:
    """Number of features `features` produces for one image, so no model hard-codes a flatten size."""
    with torch.no_grad():
        return features(torch.zeros(1, in_channels, image_size, image_size)).flatten(1).shape[1]
