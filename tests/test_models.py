from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

MODEL_CONFIGS = sorted((Path(__file__).parents[1] / "conf" / "model").glob("*.yaml"))


def build(config: Path, in_channels: int, image_size: int, num_classes: int, dropout: float = 0.3):
    cfg = OmegaConf.load(config)
    cfg.merge_with(
        {"in_channels": in_channels, "image_size": image_size, "num_classes": num_classes, "dropout": dropout}
    )
    return instantiate(cfg)


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize(("in_channels", "image_size", "num_classes"), [(3, 32, 10), (1, 90, 52)])
def test_every_model_fits_rgb_cifar_and_grayscale_characters(config, in_channels, image_size, num_classes):
    net = build(config, in_channels, image_size, num_classes)
    logits = net(torch.randn(2, in_channels, image_size, image_size))
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_dropout_setting_reaches_a_dropout_layer(config):
    net = build(config, 3, 32, 10, dropout=0.37)
    rates = [m.p for m in net.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    assert 0.37 in rates
