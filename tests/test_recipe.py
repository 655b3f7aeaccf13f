"""airbench94's recipe pieces: the net's init and numerics, parameter groups and decoupled units, the whitening
bias's freeze, the Lookahead callback."""

import copy
import math
from functools import partial
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from conftest import run_cli, tiny_cifar_overrides
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_cifar.callbacks.lookahead import Lookahead
from lit_cifar.callbacks.whitening import PatchWhitening
from lit_cifar.models.fast_cnn import FastCNN
from lit_cifar.run.errors import UserError
from lit_cifar.training.module import LitClassifier
from lit_cifar.training.optim import build_optimizer
from lit_cifar.training.schedules import warmup_linear

AIRBENCH = {"lr": 11.5, "weight_decay": 0.0153, "momentum": 0.85, "norm_lr_scale": 64.0, "batch_size": 1024}


def airbench_torch_values(lr, weight_decay, momentum, norm_lr_scale, batch_size):
    """What airbench's `train()` hands torch's SGD for its loss summed over the batch (lr, wd of the two groups)."""
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr_sum = lr / kilostep_scale
    wd = weight_decay * batch_size / kilostep_scale
    lr_biases = lr_sum * norm_lr_scale
    return {"main": (lr_sum, wd / lr_sum), "norm": (lr_biases, wd / lr_biases)}


def sgd(net: nn.Module, **kwargs) -> torch.optim.Optimizer:
    return build_optimizer(net, algorithm="torch.optim.SGD", nesterov=True, **kwargs)


def test_per_1024_units_give_airbench_steps_for_a_mean_loss():
    optimizer = sgd(FastCNN(3, 10, 32, widths=(8, 16, 16)), units="per_1024", **AIRBENCH)
    groups = {group["name"]: group for group in optimizer.param_groups}
    airbench = airbench_torch_values(**AIRBENCH)
    batch = AIRBENCH["batch_size"]
    assert groups["main"]["lr"] == pytest.approx(1.4999, abs=1e-3)
    for name, (lr_sum, wd_sum) in airbench.items():
        # our gradient is the mean, `batch` times smaller: the same step needs `batch` times the lr
        assert groups[name]["lr"] == pytest.approx(lr_sum * batch)
        # the same decay per step (lr × weight_decay) as airbench's
        assert groups[name]["lr"] * groups[name]["weight_decay"] == pytest.approx(lr_sum * wd_sum)
    assert groups["norm"]["lr"] == pytest.approx(64 * groups["main"]["lr"])


def test_a_mean_loss_step_in_per_1024_units_is_airbenchs_summed_loss_step():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    ours, theirs = net, copy.deepcopy(net)
    values = {**AIRBENCH, "batch_size": 8}
    ours_opt = sgd(ours, units="per_1024", **values)
    airbench = airbench_torch_values(**values)
    norm = list(theirs[1].parameters())
    theirs_opt = torch.optim.SGD(
        [
            {"params": [p for p in theirs.parameters() if all(p is not q for q in norm)], "lr": airbench["main"][0],
             "weight_decay": airbench["main"][1]},
            {"params": norm, "lr": airbench["norm"][0], "weight_decay": airbench["norm"][1]},
        ],
        momentum=values["momentum"], nesterov=True,
    )  # fmt: skip
    images, labels = torch.randn(8, 3, 6, 6), torch.randint(0, 10, (8,))
    for _ in range(3):
        for model, optimizer, reduction in ((ours, ours_opt, "mean"), (theirs, theirs_opt, "sum")):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images), labels, reduction=reduction).backward()
            optimizer.step()
    for mine, airbenchs in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine, airbenchs, rtol=1e-4, atol=1e-6)


def test_norm_parameters_get_their_lr_scale_at_the_same_decay_per_step():
    net = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2), nn.GroupNorm(1, 2))
    optimizer = sgd(net, lr=0.1, momentum=0.9, weight_decay=1e-3, norm_lr_scale=4.0)
    main, norm = optimizer.param_groups
    assert (main["name"], norm["name"]) == ("main", "norm")
    assert [p.shape for p in norm["params"]] == [(4,), (4,), (2,), (2,)]
    assert len(main["params"]) == 4
    assert (main["lr"], norm["lr"]) == pytest.approx((0.1, 0.4))
    assert norm["lr"] * norm["weight_decay"] == pytest.approx(main["lr"] * main["weight_decay"])


def test_one_group_of_trainable_parameters_without_a_norm_lr_scale():
    net = FastCNN(3, 10, 32, widths=(8, 16, 16))
    (group,) = build_optimizer(net, algorithm="torch.optim.AdamW", lr=1e-3, weight_decay=0.05).param_groups
    assert (group["lr"], group["weight_decay"]) == (1e-3, 0.05)
    assert len(group["params"]) == len([p for p in net.parameters() if p.requires_grad])
    assert all(p is not net.whiten.weight for p in group["params"])  # frozen parameters stay out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithm": "torch.optim.Nope"}, "optim.algorithm=torch.optim.Nope is not a torch optimizer class"),
        ({"algorithm": "torch.nn.Linear"}, "optim.algorithm=torch.nn.Linear is not a torch optimizer class"),
        ({"algorithm": "torch.optim.Adam", "units": "per_1024"}, "optim.units=per_1024 is defined for SGD"),
        ({"units": "per_1024", "momentum": 0.9}, "optim.units=per_1024 needs the batch size"),
    ],
)
def test_bad_optimizer_settings_are_one_line_naming_the_key(options, message):
    build = partial(build_optimizer, nn.Linear(2, 2), lr=0.1)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build(**{"algorithm": "torch.optim.SGD", **options})


def test_fast_cnn_starts_as_airbench_does():
    net = FastCNN(3, 10, 32, widths=(32, 16, 16))
    first, second = net.features[1][0], net.features[1][4]  # the first group's two convs, 24 → 32 → 32 channels
    assert torch.equal(first.weight[:24], nn.init.dirac_(torch.empty(24, 24, 3, 3)))  # its inputs passed through
    assert first.weight[24:].abs().sum() > 0  # the other filters: torch's default init
    assert torch.equal(second.weight, nn.init.dirac_(torch.empty(32, 32, 3, 3)))
    assert torch.equal(net.whiten.bias, torch.zeros(24))
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    settings = {(m.eps, m.momentum, m.weight.requires_grad, m.bias.requires_grad) for m in norms}
    assert settings == {(1e-12, 0.4, False, True)}
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)


def test_fast_cnn_backward_is_deterministic():
    net = FastCNN(3, 10, 32, widths=(8, 16, 16))
    torch.use_deterministic_algorithms(True)
    try:
        net(torch.randn(2, 3, 32, 32)).sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)
    assert not any(isinstance(m, nn.AdaptiveMaxPool2d) for m in net.modules())  # no deterministic CUDA backward


def test_fast_cnn_whitens_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    net = FastCNN(3, 10, 32, widths=(8, 16, 16))
    images = torch.randn(16, 3, 32, 32)
    net.whiten_(images)
    seen = []
    net.whiten.register_forward_hook(lambda module, inputs, output: seen.append(output))
    net(images)
    with torch.autocast("cpu", torch.bfloat16):
        net(images)
    exact, autocast = seen
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, exact)


class TinyImages(pl.LightningDataModule):
    """32 random 16×16 images, already normalized, for a net that needs `train_set.images` to whiten."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.train_set = SimpleNamespace(images=torch.randn(32, 3, 16, 16, generator=generator))
        self.labels = torch.randint(0, 10, (32,), generator=generator)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.train_set.images, self.labels), batch_size=8)


class EpochEnds(pl.Callback):
    """The whitening bias at the start and at each epoch's end."""

    def __init__(self) -> None:
        self.biases = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.biases.append(pl_module.net.whiten.bias.detach().clone())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.biases.append(pl_module.net.whiten.bias.detach().clone())


def tiny_trainer(tmp_path, callbacks: list[pl.Callback], max_epochs: int, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", max_epochs=max_epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=callbacks, default_root_dir=tmp_path, **kwargs,
    )  # fmt: skip


def tiny_fast_cnn_module() -> LitClassifier:
    torch.manual_seed(0)
    optimizer = partial(sgd, lr=0.5, momentum=0.9, weight_decay=0.1)
    return LitClassifier(FastCNN(3, 10, 16, widths=(8, 8, 8)), optimizer, num_classes=10)


def test_the_whitening_bias_stops_moving_after_its_epochs(tmp_path):
    ends = EpochEnds()
    trainer = tiny_trainer(tmp_path, [PatchWhitening(num_images=32, bias_epochs=1), ends], max_epochs=3)
    trainer.fit(tiny_fast_cnn_module(), datamodule=TinyImages())
    start, *epochs = ends.biases
    assert not torch.equal(epochs[0], start)  # trained in epoch 0
    assert torch.equal(epochs[1], epochs[0]) and torch.equal(epochs[2], epochs[0])  # no step, momentum or decay after


class BackwardReach(pl.Callback):
    """Per epoch: whether the backward pass of its first batch reached the whitening layer's output."""

    def __init__(self) -> None:
        self.reached: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.reached.append(pl_module.net.whiten(batch[0][:1]).requires_grad)


def test_after_its_epochs_the_backward_pass_stops_before_the_whitening_layer(tmp_path):
    reach = BackwardReach()
    module = tiny_fast_cnn_module()
    trainer = tiny_trainer(tmp_path, [PatchWhitening(num_images=32, bias_epochs=1), reach], max_epochs=3)
    trainer.fit(module, datamodule=TinyImages())
    assert reach.reached == [True, False, False]  # as airbench: no gradient through the whole-resolution images
    assert module.net.whiten.bias.requires_grad  # the net as it was built, once fitting ends
    trainer.save_checkpoint(tmp_path / "end.ckpt")
    resumed = BackwardReach()  # a run resumed after the bias's epochs starts without it
    trainer = tiny_trainer(tmp_path, [PatchWhitening(num_images=32, bias_epochs=1), resumed], max_epochs=4)
    trainer.fit(tiny_fast_cnn_module(), datamodule=TinyImages(), ckpt_path=tmp_path / "end.ckpt")
    assert resumed.reached == [False]


def lookahead_started(net: nn.Module, total_steps: int, **options) -> Lookahead:
    lookahead = Lookahead(**options)
    lookahead.on_train_start(
        SimpleNamespace(global_step=0, estimated_stepping_batches=total_steps), SimpleNamespace(net=net)
    )
    return lookahead


def lookahead_at(lookahead: Lookahead, net: nn.Module, step: int) -> None:
    """The callback's hook as the Trainer calls it after optimizer step `step`."""
    lookahead.on_train_batch_end(SimpleNamespace(global_step=step), SimpleNamespace(net=net))


def test_lookahead_pulls_the_weights_back_on_airbenchs_schedule():
    net = nn.BatchNorm1d(1)  # a parameter and running statistics (buffers), all pulled back
    lookahead = lookahead_started(net, total_steps=12, every_n_steps=5, base=0.95, power=3)
    slow = 1.0  # BatchNorm's initial weight
    for step in range(1, 13):
        with torch.no_grad():
            net.weight += 1.0  # a training step
            net.running_mean += 1.0
        fast = net.weight.item()
        lookahead_at(lookahead, net, step)
        if step in (5, 10):
            decay = 0.95**5 * (step / 12) ** 3
            slow += (1 - decay) * (fast - slow)
        expected = slow if step in (5, 10, 12) else fast  # after the last step: the slow copy
        assert net.weight.item() == pytest.approx(expected)
        assert net.running_mean.item() == pytest.approx(expected - 1.0)  # it started at 0, the weight at 1
    assert net.num_batches_tracked.item() == 0  # not floating point: left alone


def test_lookahead_reads_nothing_on_the_host(monkeypatch):
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    lookahead = lookahead_started(net, total_steps=10)

    def host_read(*args, **kwargs):
        raise AssertionError("Lookahead read a tensor on the host")

    for name in ("__bool__", "__int__", "__float__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    for step in range(1, 11):
        lookahead_at(lookahead, net, step)


def test_lookahead_resumed_from_a_checkpoint_goes_on_exactly(tmp_path):
    class StopAfterFirstEpoch(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            trainer.should_stop = True

    def fit(callbacks, ckpt_path=None) -> tuple[LitClassifier, pl.Trainer]:
        module = tiny_fast_cnn_module()
        trainer = tiny_trainer(tmp_path, [PatchWhitening(num_images=32), Lookahead(every_n_steps=3), *callbacks], 2)
        trainer.fit(module, datamodule=TinyImages(), ckpt_path=ckpt_path)
        return module, trainer

    straight, _ = fit([])
    _, stopped = fit([StopAfterFirstEpoch()])
    stopped.save_checkpoint(tmp_path / "epoch0.ckpt")
    assert torch.load(tmp_path / "epoch0.ckpt", weights_only=False)["callbacks"]["Lookahead"]["slow"]
    resumed, _ = fit([], ckpt_path=tmp_path / "epoch0.ckpt")
    for name, value in straight.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[name], value, msg=name)


def airbench_run(images: int, batch_size: int, epochs: int) -> dict:
    """What airbench94's `train()` derives from the run's length (lib_airbench94.py and utils.py of airbench 0.1.8):
    its step count (whole batches, the remainder dropped), the triangle's lr factor at steps 0 … steps (0.2, up to 1
    at int(0.23 × steps), down to 0.07 at `steps`, linear between), Lookahead's decay at each step (0.95⁵ × t³) and
    in which epochs the whitening bias trains (the first 3)."""
    steps = math.ceil(images // batch_size * epochs)
    peak = int(0.23 * steps)

    def triangle(step: int) -> float:
        if step < peak:
            return 0.2 + 0.8 * step / peak
        return 1 + (0.07 - 1) * (step - peak) / (steps - peak)

    return {
        "steps": steps,
        "lr": [triangle(step) for step in range(steps + 1)],
        "decay": [0.95**5 * (step / steps) ** 3 for step in range(steps + 1)],
        "bias_epochs": 3,
    }


@pytest.mark.parametrize("steps", [1, 12, 13, 30, 179, 440])
def test_the_triangle_is_airbenchs_at_every_length(steps):
    # 13 steps: the peak at int(2.99) = 2, where rounding would put it at 3
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_linear(optimizer, steps, warmup_fraction=0.23, initial_factor=0.2, final_factor=0.07)
    ours = []
    for _ in range(steps):
        ours.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    airbench = airbench_run(images=steps, batch_size=1, epochs=1)["lr"]
    assert ours == pytest.approx(airbench[:steps])


class RecipeTrace(pl.Callback):
    """At each optimizer step of a run: the lr factor of each parameter group, whether the whitening bias steps and
    Lookahead's decay; kept on the class for the test that adds it in this process (+callbacks.trace)."""

    steps: list[dict] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        lookahead = next(callback for callback in trainer.callbacks if isinstance(callback, Lookahead))
        step = trainer.global_step + 1  # the step about to be taken, counted from 1 as airbench's `current_steps`
        RecipeTrace.steps.append({
            "epoch": trainer.current_epoch,
            "lr": [group["lr"] / group["initial_lr"] for group in optimizer.param_groups],
            "bias_steps": pl_module.net.whiten.bias.grad is not None,
            "decay": lookahead.decay(step, lookahead._total_steps),
        })  # fmt: skip


@pytest.mark.parametrize(("batch_size", "epochs"), [(16, 2), (16, 5), (32, 7)])
def test_fast94_follows_airbenchs_schedules_step_by_step_at_any_length(cifar_root, tmp_path, batch_size, epochs):
    RecipeTrace.steps = []
    proc = run_cli(
        "lit_cifar.train", "experiment=fast94", *tiny_cifar_overrides(cifar_root), "data.val_size=0",
        f"data.batch_size={batch_size}", f"trainer.max_epochs={epochs}", "model.widths=[8,8,8]",
        "+callbacks.trace._target_=test_recipe.RecipeTrace", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    airbench = airbench_run(images=100, batch_size=batch_size, epochs=epochs)  # the fixture's 100 training images
    trace = RecipeTrace.steps
    assert len(trace) == airbench["steps"]
    for step, seen in enumerate(trace):
        assert seen["lr"] == pytest.approx([airbench["lr"][step]] * 2), step  # both groups: main and norm
        assert seen["bias_steps"] == (seen["epoch"] < airbench["bias_epochs"]), step
        if (step + 1) % 5 == 0:
            assert seen["decay"] == pytest.approx(airbench["decay"][step + 1]), step


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["experiment=fast94"], "not optim.units=per_1024 with optim.norm_lr_scale=64; tune with optim.units=torch"),
        (["model=fast_cnn", "optim=muon"], "optim.muon steps the conv filters with another; tune without it"),
    ],
)
def test_tune_refuses_an_optimizer_the_lr_finder_cannot_measure(cifar_root, tmp_path, overrides, message):
    proc = run_cli("lit_cifar.tune", *overrides, *tiny_cifar_overrides(cifar_root), f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert message in proc.stderr
