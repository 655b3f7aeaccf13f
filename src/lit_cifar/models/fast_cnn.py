"""An airbench-class net for fast CIFAR-10 training: a frozen first layer that whitens 2×2 patches, then
three conv groups with BatchNorm and a global max-pool. The whitening weights come from training images
(`whiten_`), which `lit_cifar.callbacks.whitening.PatchWhitening` calls before training starts."""

import torch
from torch import Tensor, nn


def conv_group(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv3×3 → max-pool 2 → BN → GELU → conv3×3 → BN → GELU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class FastCNN(nn.Module):
    """whiten (2×2, frozen weights, learned bias) → GELU → three conv groups → max over the map → linear.
    Logits are scaled by `logit_scale` so that they start small, which keeps high learning rates stable."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: tuple[int, int, int] = (64, 256, 256),
        dropout: float = 0.0,
        logit_scale: float = 1 / 9,
    ) -> None:
        super().__init__()
        patch_dim = in_channels * 2 * 2
        # Each whitened direction appears with both signs, so GELU keeps the information of either sign.
        self.whiten = nn.Conv2d(in_channels, 2 * patch_dim, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.features = nn.Sequential(
            nn.GELU(),
            conv_group(2 * patch_dim, widths[0]),
            conv_group(widths[0], widths[1]),
            conv_group(widths[1], widths[2]),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[2], num_classes, bias=False))
        self.logit_scale = logit_scale

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
        return self.head(self.features(self.whiten(images))) * self.logit_scale
