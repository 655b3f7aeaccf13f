"""What breaks only on GPU hosts, checked on the CPU: nets whose backward has no deterministic CUDA kernel,
checkpoints written on another GPU, and parallel sweep jobs sharing the GPUs."""

import pytest
import torch
from test_models import MODEL_CONFIGS, build
from torch import nn

from lit_cifar.models.common import GlobalAvgPool

# Their CUDA backward has no deterministic implementation: `trainer.deterministic=true` raises on a GPU.
NONDETERMINISTIC_ON_CUDA = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)


def test_global_avg_pool_gives_adaptive_avg_pool_s_output_and_gradient():
    maps = torch.randn(4, 8, 5, 5, requires_grad=True)
    ours = GlobalAvgPool()(maps)
    (ours * torch.arange(8.0).view(1, 8, 1, 1)).sum().backward()
    ours_grad, maps.grad = maps.grad, None
    theirs = nn.AdaptiveAvgPool2d(1)(maps)
    (theirs * torch.arange(8.0).view(1, 8, 1, 1)).sum().backward()
    assert ours.shape == theirs.shape == (4, 8, 1, 1)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_grad, maps.grad)


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_every_model_trains_under_deterministic_algorithms(config):
    """On the CPU the flag cannot catch the CUDA-only kernels, hence the check on the layers themselves."""
    net = build(config, 3, 32, 10)
    assert not [m for m in net.modules() if isinstance(m, NONDETERMINISTIC_ON_CUDA)]
    torch.use_deterministic_algorithms(True)
    try:
        net(torch.randn(2, 3, 32, 32)).sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)
