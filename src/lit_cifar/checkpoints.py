"""Reading a training checkpoint back: to resume it, or to rebuild its net and data settings elsewhere.

A checkpoint holds the run's resolved config (`run_config`, see LitClassifier.on_save_checkpoint) and
the datamodule's state (class names, mean, std) under the datamodule's class name."""

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from lit_cifar.data.base import ImageDataModule
from lit_cifar.errors import UserError


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist; pass ckpt_path=<a .ckpt file>, "
            "e.g. outputs/DATE/TIME/checkpoints/last.ckpt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no code runs from the file
    except Exception as err:
        raise UserError(
            f"{path} is not a readable checkpoint ({type(err).__name__}); pass another .ckpt file"
        ) from None
    if not isinstance(ckpt, dict) or not ckpt.get("run_config") or "state_dict" not in ckpt:
        raise UserError(
            f"{path} is not a lit_cifar checkpoint (it has no run_config); pass one that lit_cifar.train wrote"
        )
    return ckpt


def _name(target: str) -> str:
    return target.rsplit(".", 1)[-1]


def trained_with(ckpt: dict) -> str:
    config = ckpt["run_config"]
    return f"model {_name(config['model']['_target_'])} on {_name(config['data']['_target_'])}"


def check_fits(module: nn.Module, ckpt: dict, path: str | Path, prefix: str = "") -> None:
    """Raise a UserError unless the checkpoint's weights (those under `prefix`) have exactly the names and
    shapes of `module`'s: a checkpoint of another model, width or number of classes."""
    expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
    found = {
        name.removeprefix(prefix): tuple(value.shape)
        for name, value in ckpt["state_dict"].items()
        if name.startswith(prefix)
    }
    if found != expected:
        raise UserError(
            f"{path} holds {trained_with(ckpt)}, whose weights do not fit the model configured "
            "here; use the model=/data= options it was trained with, or another checkpoint"
        )


def resume_path(cfg: DictConfig, run_dir: Path, module: nn.Module, fresh_start_allowed: bool) -> str | None:
    """`cfg.ckpt_path` checked before training starts: `last` is this run dir's `checkpoints/last.ckpt`;
    the checkpoint must be of the configured model and dataset. Without a `last.ckpt`, a sweep job
    (`fresh_start_allowed`: a cluster job gets the same command line on its first run and after a
    re-queue) starts from scratch, and a single run stops: its hydra.run.dir is likely mistyped."""
    if cfg.ckpt_path is None:
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if cfg.ckpt_path == "last" else Path(cfg.ckpt_path)
    if cfg.ckpt_path == "last" and not path.is_file():
        if fresh_start_allowed:
            return None
        raise UserError(
            f"nothing to resume: {path} does not exist; pass the killed run's folder as "
            "hydra.run.dir=outputs/DATE/TIME with ckpt_path=last"
        )
    ckpt = read_checkpoint(path)
    targets = (ckpt["run_config"]["model"]["_target_"], ckpt["run_config"]["data"]["_target_"])
    if targets != (cfg.model._target_, cfg.data._target_):
        raise UserError(
            f"{path} holds {trained_with(ckpt)} but this run configures model {_name(cfg.model._target_)} "
            f"on {_name(cfg.data._target_)}; use the options it was trained with, or another checkpoint"
        )
    check_fits(module, ckpt, path)
    return str(path)


def load_net(ckpt: dict, path: str | Path) -> nn.Module:
    """The trained net in eval mode, rebuilt from the checkpoint's own model config."""
    net = instantiate(ckpt["run_config"]["model"])
    check_fits(net, ckpt, path, prefix="net.")
    net.load_state_dict(
        {name.removeprefix("net."): value for name, value in ckpt["state_dict"].items() if name.startswith("net.")}
    )
    return net.eval()


def load_datamodule(ckpt: dict, **overrides) -> ImageDataModule:
    """The checkpoint's datamodule (its config with the non-None `overrides`), holding the class names,
    mean and std the net was trained with."""
    config = {**ckpt["run_config"]["data"], **{k: v for k, v in overrides.items() if v is not None}}
    datamodule = instantiate(config)
    state = ckpt.get(_name(config["_target_"]), {})
    datamodule.class_names = list(state.get("class_names", []))
    datamodule.mean, datamodule.std = state.get("mean", datamodule.mean), state.get("std", datamodule.std)
    return datamodule
