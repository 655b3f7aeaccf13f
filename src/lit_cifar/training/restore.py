"""Reading a checkpoint back into a net for `evaluate` and `predict`: the trained net, its datamodule (class
names, mean and std as trained) and the run's own test-time augmentation.

A checkpoint is data from a file: its stored config (`run_config`) chooses among the project's own models and
datasets (lit_cifar.run.targets) and gives them plain values; the classes are called here with those values, so
nothing in the file is instantiated as Hydra would (no `_target_` of its own, no interpolation resolved)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from lit_cifar.run.checkpoints import check_fits, checkpoint_file, read_checkpoint
from lit_cifar.run.errors import UserError
from lit_cifar.run.targets import code_in_stored
from lit_cifar.run.validate import check_values

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


def stored(ckpt: dict, path: str | Path, group: str) -> tuple[type, dict]:
    """The class and the settings that the checkpoint's stored config gives `group` (`model`, `data`), refused in
    one line unless the class is one of the project's own for that group and the settings are plain values."""
    run_config = ckpt["run_config"]
    config = run_config.get(group) if isinstance(run_config, dict) else None
    if problem := code_in_stored(config, group):
        raise UserError(f"{path}'s run_config {problem}; use a checkpoint that lit_cifar.train wrote")
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    settings = {key: value for key, value in config.items() if key != "_target_"}
    try:
        check_values(OmegaConf.create({group: _unresolvable(config)}))  # the ranges and types a start checks
    except UserError as err:
        raise UserError(f"{path}'s run_config sets {err}; use a checkpoint that lit_cifar.train wrote") from None
    return get_class(config["_target_"]), settings


def _unresolvable(value: object) -> object:
    """`value` with each `${` escaped: OmegaConf reads the stored strings as they are, resolving nothing."""
    if isinstance(value, dict):
        return {key: _unresolvable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unresolvable(item) for item in value]
    return value.replace("${", "\\${") if isinstance(value, str) else value


def built(cls: type, settings: dict, path: str | Path, group: str) -> object:
    """`cls(**settings)`, the stored settings of the checkpoint at `path`'s `group`."""
    try:
        return cls(**settings)
    except (TypeError, ValueError) as err:  # a setting the class does not take, or of another type
        raise UserError(
            f"{path}'s run_config cannot build its {group} {cls.__name__} ({err}); use a checkpoint that "
            "lit_cifar.train wrote"
        ) from None


def load_net(ckpt: dict, path: str | Path) -> nn.Module:
    """The trained net in eval mode, rebuilt from the checkpoint's own model config."""
    net = built(*stored(ckpt, path, "model"), path, "model")
    check_fits(net, ckpt, path, prefix="net.")
    net.load_state_dict(
        {name.removeprefix("net."): value for name, value in ckpt["state_dict"].items() if name.startswith("net.")}
    )
    return net.eval()


def run_logits(ckpt: dict, net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits as the run's own test computed them: through its test-time augmentation when `module.tta` was on."""
    from lit_cifar.training.tta import tta_logits

    module = ckpt["run_config"].get("module")
    tta = isinstance(module, dict) and module.get("tta") is True
    return partial(tta_logits, net, flip=module.get("tta_flip") is True) if tta else net


def trained_logits(
    ckpt: dict, path: str | Path, device: str
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.device]:
    """The logits of the checkpoint's net as the run's own test computed them (`run_logits`), on `device`
    (`pick_device`), and that device, for the images to go to."""
    on = pick_device(device)
    return run_logits(ckpt, load_net(ckpt, path).to(on)), on


def load_datamodule(ckpt: dict, path: str | Path, **overrides) -> ImageDataModule:
    """The checkpoint's datamodule (its config with the non-None `overrides`), holding the class names, mean and
    std the net was trained with. It never downloads, and counts the classes of the data it finds (`evaluate`
    compares them with the trained ones)."""
    cls, settings = stored(ckpt, path, "data")
    settings |= {key: value for key, value in overrides.items() if value is not None}
    settings |= {"num_classes": None} | ({"download": False} if "download" in settings else {})
    datamodule = built(cls, settings, path, "data")
    state = ckpt.get(cls.__qualname__)  # where Lightning keeps a datamodule's state_dict
    state = state if isinstance(state, dict) else {}
    datamodule.class_names = list(state.get("class_names", []))
    datamodule.mean, datamodule.std = state.get("mean", datamodule.mean), state.get("std", datamodule.std)
    for name, values in (("mean", datamodule.mean), ("std", datamodule.std)):
        if not _channel_values(values, datamodule.in_channels, positive=name == "std"):
            raise UserError(
                f"{path} holds a {name} of {values!r}, not {datamodule.in_channels} finite numbers"
                f"{' above 0' if name == 'std' else ''}, one a channel; use a checkpoint that lit_cifar.train wrote"
            )
    return datamodule


def _channel_values(values: object, channels: int, positive: bool) -> bool:
    numbers = list(values) if isinstance(values, list | tuple) else []
    finite = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in numbers)
    return len(numbers) == channels and finite and (not positive or all(v > 0 for v in numbers))


def check_data_found(datamodule: ImageDataModule, path: str | Path, use: str) -> None:
    """Refuse in one line when the datamodule's data is not where `data.root` says: with downloads off, a
    datamodule's `prepare_data` only looks for it."""
    try:
        datamodule.prepare_data()
    except UserError as err:
        missing = str(err).split("; ")[0]  # the advice after it is training's (data.download=true)
        raise UserError(
            f"{missing}; {use} never downloads: point data.root at the data {path} was trained on"
        ) from None


def load_test_split(ckpt: dict, path: str | Path, use: str, **overrides) -> ImageDataModule:
    """The checkpoint's datamodule (`load_datamodule`) with its test split read (`test_set`: the held-out
    validation images for data without a test split, as the run's own test), keeping the class names, mean and
    std the net was trained with; refused in one line when the data found is missing or holds other classes.
    `use` is the command, for its errors."""
    datamodule = load_datamodule(ckpt, path, **overrides)
    trained_classes, trained_stats = datamodule.class_names, (datamodule.mean, datamodule.std)
    check_data_found(datamodule, path, use)
    datamodule.setup("test")
    datamodule.mean, datamodule.std = trained_stats  # setup computes those of the data found
    if trained_classes and datamodule.class_names != trained_classes:
        raise UserError(
            f"{path} was trained on the classes {trained_classes} but the dataset found "
            f"holds {datamodule.class_names}; point data.root at the dataset it was trained on"
        )
    return datamodule
