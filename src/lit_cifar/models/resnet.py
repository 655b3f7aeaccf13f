"""Residual nets: report 004's light residual net and report 003's ResNet-18 adapted to small images."""

import torchvision
from torch import Tensor, nn

from lit_cifar.models.common import DropoutRate, GlobalAvgPool, flat_size


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class ResidualStage(nn.Module):
    """conv3×3(stride 2)+BN added to a 1×1(stride 2)+BN projection of the input, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = conv_bn(in_channels, out_channels, 3, 2)
        self.shortcut = conv_bn(in_channels, out_channels, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return (self.body(x) + self.shortcut(x)).relu_()


class ResNetLite(nn.Module):
    """Report 004's "light model 2": stem → two residual stages (64, 128) → flatten → dropout → fc.

    The report's stem (7×7 stride 2 + max-pool) suits its 90×90 characters; on images of 32 pixels or
    less it would leave a 2×2 map, so there the stem is a 3×3 stride-1 conv, as report 003 did for
    ResNet-18 on CIFAR-10. `downsample_stem` forces either choice."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        width: int = 32,
        dropout: DropoutRate = 0.4,
        downsample_stem: bool | None = None,
    ) -> None:
        super().__init__()
        if downsample_stem is None:
            downsample_stem = image_size > 32
        stem = (
            [conv_bn(in_channels, width, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
            if downsample_stem
            else [conv_bn(in_channels, width, 3, 1), nn.ReLU(inplace=True)]
        )
        self.features = nn.Sequential(*stem, ResidualStage(width, 2 * width), ResidualStage(2 * width, 4 * width))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(flat_size(self.features, in_channels, image_size), num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        return self.fc(self.dropout(self.features(images).flatten(1)))


class ResNet18(nn.Module):
    """Report 003: torchvision's ResNet-18 with a 3×3 stride-1 stem and no max-pool for small images,
    dropout before the classifier, and optionally ImageNet weights (downloaded; needs network). Its global
    average pool is a plain mean (GlobalAvgPool), so it trains with `trainer.deterministic=true` on a GPU."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int = 32,
        dropout: DropoutRate = 0.0,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1 if pretrained else None
        net = torchvision.models.resnet18(weights=weights)
        if image_size <= 64:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        net.avgpool = GlobalAvgPool()
        net.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(net.fc.in_features, num_classes))
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)
