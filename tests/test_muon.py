"""optim.muon: Muon on the conv filters beside SGD on the rest, as airbench94_muon steps them."""

import copy
import json
from functools import partial

import lightning.pytorch as pl
import pytest
import torch
from conftest import run_cli, tiny_cifar_overrides
from test_recipe import TinyImages, tiny_trainer
from torch import nn

from lit_cifar.callbacks.whitening import PatchWhitening
from lit_cifar.models.fast_cnn import FastCNN
from lit_cifar.run.errors import UserError
from lit_cifar.training.module import LitClassifier
from lit_cifar.training.muon import FilterMuon, OptimizerChain
from lit_cifar.training.optim import build_optimizer

MUON = {"lr": 0.24, "momentum": 0.6, "nesterov": True, "ns_steps": 3, "normalize_weights": True}


def airbench_muon_steps(weight: torch.Tensor, grads: list[torch.Tensor], lr: float, momentum: float) -> torch.Tensor:
    """airbench94_muon's Muon, written out: momentum summed (buffer = momentum × buffer + grad) with Nesterov's look
    ahead; the weight rescaled to norm √(rows); then a step of lr along the update orthogonalised by three quintic
    Newton-Schulz iterations in bf16 on the matrix of the filter's rows."""
    weight, buffer = weight.clone(), torch.zeros_like(weight)
    a, b, c = 3.4445, -4.7750, 2.0315
    for grad in grads:
        buffer = momentum * buffer + grad
        update = (grad + momentum * buffer).reshape(len(grad), -1).bfloat16()
        update = update / (update.norm() + 1e-7)
        transposed = update.size(0) > update.size(1)
        update = update.T if transposed else update
        for _ in range(3):
            gram = update @ update.T
            update = a * update + (b * gram + c * gram @ gram) @ update
        update = (update.T if transposed else update).float().view_as(weight)
        weight = weight * (len(weight) ** 0.5 / weight.norm())
        weight = weight - lr * update
    return weight


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_filter_muon_steps_a_conv_filter_as_airbench94_muon(memory_format):
    torch.manual_seed(0)
    conv = nn.Conv2d(24, 32, 3, bias=False).to(memory_format=memory_format)
    start = conv.weight.detach().clone()
    grads = [torch.randn_like(start) for _ in range(3)]
    optimizer = FilterMuon([conv.weight], **MUON)
    for grad in grads:
        conv.weight.grad = grad.clone().to(memory_format=memory_format)
        optimizer.step()
        optimizer.zero_grad()
        assert conv.weight.grad is None
    expected = airbench_muon_steps(start, grads, lr=0.24, momentum=0.6)
    # bf16 orthogonalisation: the two agree to bf16's precision on a step of 0.24 per unit of the update
    torch.testing.assert_close(conv.weight.detach(), expected, atol=5e-3, rtol=0)
    assert conv.weight.is_contiguous(memory_format=memory_format)  # stepped in place, through the view


def test_muon_takes_the_filters_and_sgd_the_rest_in_their_groups():
    net = FastCNN(3, 10, 32, widths=(8, 16, 16))
    optimizer = build_optimizer(
        net, algorithm="torch.optim.SGD", lr=5260, momentum=0.85, nesterov=True, weight_decay=0.0157,
        norm_lr_scale=0.0791, norm_group="vectors", units="per_1024", batch_size=2000, muon=MUON,
    )  # fmt: skip
    assert isinstance(optimizer, OptimizerChain)
    sgd, muon = optimizer.optimizers
    filters = [p for p in net.parameters() if p.requires_grad and p.ndim == 4]
    assert [w for w in muon.weights] == filters and len(filters) == 6  # two convs per group; the whitening's frozen
    groups = {group["name"]: group["params"] for group in sgd.param_groups}
    assert groups["main"] == [net.head[1].weight]
    vectors = {id(p) for p in net.parameters() if p.requires_grad and p.ndim == 1}
    assert {id(p) for p in groups["norm"]} == vectors and id(net.whiten.bias) in vectors  # every bias
    # per example of a summed loss, as airbench94_muon writes them: head 0.67, biases 0.053, decay 2e-6 per example
    lrs = {group["name"]: group["lr"] / 2000 for group in sgd.param_groups}
    assert lrs == pytest.approx({"main": 0.67, "norm": 0.053}, rel=2e-3)
    main = next(group for group in sgd.param_groups if group["name"] == "main")
    assert main["lr"] * main["weight_decay"] == pytest.approx(2e-6 * 2000, rel=2e-3)
    assert optimizer.param_groups == [*sgd.param_groups, *muon.param_groups]


def test_muon_needs_conv_filters():
    with pytest.raises(UserError, match="optim.muon steps conv filters, and the net Linear has none; add ~optim.muon"):
        build_optimizer(nn.Linear(4, 2), algorithm="torch.optim.SGD", lr=0.1, muon=MUON)


class StopAfterFirstEpoch(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


def test_a_run_resumed_with_muon_goes_on_exactly(tmp_path):
    def fit(callbacks, ckpt_path=None) -> LitClassifier:
        torch.manual_seed(0)
        optimizer = partial(build_optimizer, algorithm="torch.optim.SGD", lr=0.3, momentum=0.85, muon=MUON)
        module = LitClassifier(FastCNN(3, 10, 16, widths=(8, 8, 8)), optimizer, num_classes=10)
        trainer = tiny_trainer(tmp_path, [PatchWhitening(num_images=32), *callbacks], 2)
        trainer.fit(module, datamodule=TinyImages(), ckpt_path=ckpt_path)
        if callbacks:
            trainer.save_checkpoint(tmp_path / "epoch0.ckpt")
        return module

    straight = fit([])
    fit([StopAfterFirstEpoch()])
    saved = torch.load(tmp_path / "epoch0.ckpt", weights_only=False)["optimizer_states"][0]
    assert len(saved["optimizers"]) == 2 and saved["optimizers"][1]["state"]  # Muon's momentum is in it
    resumed = fit([], ckpt_path=tmp_path / "epoch0.ckpt")
    for name, value in straight.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[name], value, msg=name)


def test_the_scheduler_sets_both_optimizers_lr():
    net = FastCNN(3, 10, 16, widths=(8, 8, 8))
    optimizer = build_optimizer(net, algorithm="torch.optim.SGD", lr=0.5, momentum=0.85, muon=MUON)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 4)
    for step in range(4):
        assert [group["lr"] for group in optimizer.optimizers[1].param_groups] == pytest.approx([0.24 * (1 - step / 4)])
        assert optimizer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.5 * (1 - step / 4))
        for p in net.parameters():
            p.grad = torch.zeros_like(p) if p.requires_grad else None
        optimizer.step()
        scheduler.step()
    copy.deepcopy(optimizer.state_dict())  # a checkpoint's copy of it


@pytest.mark.slow
def test_fast94_muon_trains_on_the_tiny_fixture(cifar_root, tmp_path):
    proc = run_cli(
        "lit_cifar.train", "experiment=fast94_muon", *tiny_cifar_overrides(cifar_root), "data.val_size=0",
        "trainer.max_epochs=2", "model.widths=[8,16,16]", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["test/acc"] <= 1.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.muon.lr=-1", "optim.muon.lr=-1 must be a positive number"),
        ("optim.muon.momentum=1.5", "optim.muon.momentum=1.5 must be a number in [0, 1)"),
        ("optim.muon.ns_steps=0", "optim.muon.ns_steps=0 must be a whole number from 1 to 99"),
        ("+optim.muon.foo=1", "optim.muon.foo is not an option of Muon; remove it with ~optim.muon.foo"),
    ],
)
def test_a_bad_muon_option_is_one_line_before_anything_is_written(cifar_root, tmp_path, override, message):
    proc = run_cli(
        "lit_cifar.train", "experiment=fast94_muon", *tiny_cifar_overrides(cifar_root), override,
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
