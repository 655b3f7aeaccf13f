"""Test-time augmentation: the logits of a batch averaged over shifted (and mirrored) views."""

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor


def tta_logits(net: Callable[[Tensor], Tensor], images: Tensor, flip: bool) -> Tensor:
    """Test-time augmentation of a normalized batch, weighted like airbench's level 2: half the weight on the
    image, a quarter on each of its one-pixel shifts up-left and down-right (reflect-padded, so no black
    border appears); with `flip` each of these is the mean of the view and its mirror."""

    def logits(view: Tensor) -> Tensor:
        return 0.5 * (net(view) + net(view.flip(-1))) if flip else net(view)

    height, width = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    # contiguous: a compiled net would build another graph for a view's strides
    up_left, down_right = padded[..., 2:, 2:].contiguous(), padded[..., :height, :width].contiguous()
    return 0.5 * logits(images) + 0.25 * (logits(up_left) + logits(down_right))
