"""airbench94's net for fast CIFAR-10 training: a frozen first layer that whitens 2×2 patches, then three conv
groups with BatchNorm and a global max. The whitening weights come from training images (`whiten_`), which
`lit_cifar.callbacks.whitening.PatchWhitening` calls before training starts."""

import torch
from torch import Tensor, nn

from lit_cifar.models.common import DropoutRate


def identity_conv(in_channels: int, out_channels: int, kernel_size: int, padding: int, bias: bool) -> nn.Conv2d:
    """A conv whose first `in_channels` filters pass their input channel through (Dirac init), the others
    torch's default init, and its bias 0: at the start each layer adds features to its input's, as in airbench."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:in_channels])
        if bias:
            conv.bias.zero_()
    return conv


def batch_norm(channels: int, eps: float, momentum: float, train_scale: bool) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    norm.weight.requires_grad_(train_scale)
    return norm


def conv_group(in_channels: int, out_channels: int, **norm) -> nn.Sequential:
    """conv3×3 → max-pool 2 → BN → GELU → conv3×3 → BN → GELU."""
    return nn.Sequential(
        identity_conv(in_channels, out_channels, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        batch_norm(out_channels, **norm),
        nn.GELU(),
        identity_conv(out_channels, out_channels, 3, padding=1, bias=False),
        batch_norm(out_channels, **norm),
        nn.GELU(),
    )


class FastCNN(nn.Module):
    """whiten (2×2, frozen weights, learned bias) → GELU → three conv groups → max over the map → linear.
    Logits are scaled by `logit_scale` so that they start small, which keeps high learning rates stable (null: by
    1 / the last width, the head's output divided by its input's width as airbench94_muon has it). `head_std`: the
    head's initial weights rescaled to this standard deviation (airbench94_muon: 1; null: torch's init).
    The BatchNorm defaults are airbench's: eps 1e-12, torch momentum 0.4 (airbench's 0.6 is 1 - torch's),
    scale frozen at 1 (`norm_train_scale=False`), bias trained."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: tuple[int, int, int] = (64, 256, 256),
        dropout: DropoutRate = 0.0,
        logit_scale: float | None = 1 / 9,
        head_std: float | None = None,
        norm_eps: float = 1e-12,
        norm_momentum: float = 0.4,
        norm_train_scale: bool = False,
    ) -> None:
        super().__init__()
        patch_dim = in_channels * 2 * 2
        norm = {"eps": norm_eps, "momentum": norm_momentum, "train_scale": norm_train_scale}
        # Each whitened direction appears with both signs, so GELU keeps the information of either sign.
        self.whiten = identity_conv(in_channels, 2 * patch_dim, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.features = nn.Sequential(
            nn.GELU(),
            conv_group(2 * patch_dim, widths[0], **norm),
            conv_group(widths[0], widths[1], **norm),
            conv_group(widths[1], widths[2], **norm),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[2], num_classes, bias=False))
        if head_std is not None:
            with torch.no_grad():
                self.head[1].weight.mul_(head_std / self.head[1].weight.std())
        self.logit_scale = 1 / widths[2] if logit_scale is None else logit_scale

    @torch.no_grad()
    def whiten_(self, images: Tensor, eps: float = 5e-4) -> None:
        """Set the first layer to the ZCA-like whitening of `images`' 2×2 patches (normalized N×C×H×W):
        the patch covariance's eigenvectors scaled by 1/sqrt(eigenvalue), and their negatives."""
        patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1)  # N×C×H'×W'×2×2
        patches = patches.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(0, 2)  # (N·H'·W')×(C·2·2)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / (eigenvalues + eps).sqrt()[:, None]).view(-1, *self.whiten.weight.shape[1:])
        self.whiten.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, images: Tensor) -> Tensor:
        # The whitening filters of the small eigenvalues are large: in bf16 their responses lose up to 5% (the
        # high-frequency channels), so this layer runs in the weights' own precision, outside autocast.
        with torch.autocast(images.device.type, enabled=False):
            whitened = self.whiten(images.to(self.whiten.weight.dtype))
        # amax over the map: its backward is deterministic on CUDA, AdaptiveMaxPool2d's is not.
        return self.head(self.features(whitened).amax(dim=(2, 3))) * self.logit_scale
