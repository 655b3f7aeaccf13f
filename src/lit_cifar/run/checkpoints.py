"""A checkpoint file read back: refused in one line unless lit_cifar.train wrote it, and checked against the
net it is loaded into. A checkpoint holds the run's resolved config (`run_config`, see
LitClassifier.on_save_checkpoint) and the datamodule's state (class names, mean, std) under the datamodule's
class name. Torch is imported where a checkpoint is read: `report` and `--help` never wait for it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lit_cifar.run.errors import UserError
from lit_cifar.run.record import read_outcome

if TYPE_CHECKING:
    from torch import nn


def checkpoint_file(ckpt_path: str | Path) -> Path:
    """The checkpoint that `ckpt_path` names: the file itself, or for a run folder the checkpoint its test used
    (the best by validation, or the last without validation), found in its `checkpoints/` wherever the folder
    has moved since."""
    path = Path(ckpt_path)
    if not path.is_dir():
        return path
    tested = read_outcome(path).get("tested_checkpoint")
    if not tested:
        last = path / "checkpoints" / "last.ckpt"
        example = last if last.is_file() else "outputs/DATE/TIME/checkpoints/last.ckpt"
        raise UserError(
            f"{path} is not the folder of a finished run (its metrics.json names no tested checkpoint); "
            f"pass a finished run's folder or a checkpoint file, e.g. ckpt_path={example}"
        )
    return path / "checkpoints" / Path(tested).name


def read_checkpoint(path: str | Path) -> dict:
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist; pass ckpt_path=<a run folder or a .ckpt file>, "
            "e.g. outputs/DATE/TIME or outputs/DATE/TIME/checkpoints/last.ckpt"
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


def newest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint in `folder` that trained furthest, whatever Lightning named it (`last.ckpt`, or
    `last-v1.ckpt` where a copied run dir already held one); the latest written among equals."""
    import torch

    def progress(path: Path) -> tuple[int, int, float]:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # cut short, or not a checkpoint: never the one to go on from
            return (-1, -1, 0.0)
        return (ckpt.get("epoch", -1), ckpt.get("global_step", -1), path.stat().st_mtime)

    found = sorted(folder.glob("*.ckpt"), key=progress) if folder.is_dir() else []
    return found[-1] if found and progress(found[-1])[0] >= 0 else None
