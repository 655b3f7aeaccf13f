"""Reading a checkpoint back into a net for `evaluate` and `predict`: the trained net, its datamodule (class
names, mean and std as trained) and the run's own test-time augmentation."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.utils import instantiate

from lit_cifar.run.checkpoints import _name, check_fits, checkpoint_file, read_checkpoint
from lit_cifar.run.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lit_cifar.data.base import ImageDataModule


def pick_device(name: str) -> torch.device:
    """The device `evaluate` and `predict` load a checkpoint onto: `auto` is the GPU when there is one."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(
            f"device={name} but this machine has {torch.cuda.device_count()} CUDA GPU(s); use device=auto or device=cpu"
        )
    return device


def trained_checkpoint(ckpt_path: str | None, use: str) -> tuple[Path, dict]:
    """The checkpoint file that `ckpt_path` (a run folder or a file) names, and its contents."""
    if ckpt_path is None:
        raise UserError(
            f"pass the run to {use}: ckpt_path=outputs/DATE/TIME (its folder) or a .ckpt file in its checkpoints/"
        )
    path = checkpoint_file(ckpt_path)
    return path, read_checkpoint(path)


def load_net(ckpt: dict, path: str | Path) -> nn.Module:
    """The trained net in eval mode, rebuilt from the checkpoint's own model config."""
    net = instantiate(ckpt["run_config"]["model"])
    check_fits(net, ckpt, path, prefix="net.")
    net.load_state_dict(
        {name.removeprefix("net."): value for name, value in ckpt["state_dict"].items() if name.startswith("net.")}
    )
    return net.eval()


def run_logits(ckpt: dict, net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits as the run's own test computed them: through its test-time augmentation when `module.tta` was on."""
    from lit_cifar.training.tta import tta_logits

    module = ckpt["run_config"].get("module", {})
    return partial(tta_logits, net, flip=module["tta_flip"]) if module.get("tta") else net


def load_datamodule(ckpt: dict, **overrides) -> ImageDataModule:
    """The checkpoint's datamodule (its config with the non-None `overrides`), holding the class names,
    mean and std the net was trained with."""
    config = {**ckpt["run_config"]["data"], **{k: v for k, v in overrides.items() if v is not None}}
    datamodule = instantiate(config)
    state = ckpt.get(_name(config["_target_"]), {})
    datamodule.class_names = list(state.get("class_names", []))
    datamodule.mean, datamodule.std = state.get("mean", datamodule.mean), state.get("std", datamodule.std)
    return datamodule
