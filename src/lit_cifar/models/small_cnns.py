"""The small nets of reports 000 (CS231n assignment), 001 (week 11 exercise) and 002, as nn.Modules.
Each takes in_channels, num_classes, image_size and dropout (before the classifier; 0 = the report's net)."""

from torch import Tensor, nn

from lit_cifar.models.common import DropoutRate, flat_size


class _FeaturesThenHead(nn.Module):
    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features, self.head = features, head

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images).flatten(1))


class TwoLayerFC(_FeaturesThenHead):
    """Report 000 part II: flatten → fc(hidden) → ReLU → fc(classes)."""

    def __init__(
        self, in_channels: int, num_classes: int, image_size: int, hidden: int = 4000, dropout: DropoutRate = 0.0
    ) -> None:
        head = nn.Sequential(
            nn.Linear(in_channels * image_size**2, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        super().__init__(nn.Identity(), head)


class ThreeLayerConvNet(_FeaturesThenHead):
    """Report 000 parts II–IV: conv5×5(c1, pad 2) → ReLU → conv3×3(c2, pad 1) → ReLU → fc."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int] = (32, 16),
        dropout: DropoutRate = 0.0,
    ) -> None:
        c1, c2 = channels
        features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU()
        )
        head = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat_size(features, in_channels, image_size), num_classes))
        super().__init__(features, head)


class HWChallengeCNN(_FeaturesThenHead):
    """Report 000 part V (71.29% test): conv32–ReLU–pool–conv64–pool–ReLU–fc128–ReLU–fc."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
        dropout: DropoutRate = 0.0,
    ) -> None:
        c1, c2 = channels
        features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        head = nn.Sequential(
            nn.Linear(flat_size(features, in_channels, image_size), hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        super().__init__(features, head)


class Week11CNN(_FeaturesThenHead):
    """Report 001 (72.95% test): conv16–ReLU–pool–conv32–ReLU–pool–linear, 3×3 'same' convolutions."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int] = (16, 32),
        dropout: DropoutRate = 0.0,
    ) -> None:
        c1, c2 = channels
        features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        head = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat_size(features, in_channels, image_size), num_classes))
        super().__init__(features, head)


def _conv_block(in_channels: int, out_channels: int, dropout: float) -> list[nn.Module]:
    # Report 002's order: conv → LeakyReLU → Dropout2d → BatchNorm.
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.LeakyReLU(),
        nn.Dropout2d(dropout),
        nn.BatchNorm2d(out_channels),
    ]


class ChallengeCNNBN(_FeaturesThenHead):
    """Report 002 result 011 (75.18% test): three 3×3 conv blocks (16, 32, 64) with LeakyReLU, Dropout2d
    and BatchNorm, max-pool after the second and third, then fc100 (same block, BatchNorm1d) → fc."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, int, int] = (16, 32, 64),
        hidden: int = 100,
        dropout: DropoutRate = 0.2,
    ) -> None:
        c1, c2, c3 = channels
        features = nn.Sequential(
            *_conv_block(in_channels, c1, dropout),
            *_conv_block(c1, c2, dropout),
            nn.MaxPool2d(2),
            *_conv_block(c2, c3, dropout),
            nn.MaxPool2d(2),
        )
        # The report applies Dropout2d to the flat fc100 output; on 2-D input that is plain dropout.
        head = nn.Sequential(
            nn.Linear(flat_size(features, in_channels, image_size), hidden),
            nn.LeakyReLU(),
            nn.Dropout(dropout),
            nn.BatchNorm1d(hidden),
            nn.Linear(hidden, num_classes),
        )
        super().__init__(features, head)
