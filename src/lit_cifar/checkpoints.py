"""Reading a training checkpoint back: to resume it, or to rebuild its net and data settings elsewhere.

A checkpoint holds the run's resolved config (`run_config`, see LitClassifier.on_save_checkpoint) and
the datamodule's state (class names, mean, std) under the datamodule's class name."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lit_cifar.errors import UserError

if TYPE_CHECKING:  # torch is imported where a checkpoint is read: `report` and `--help` never wait for it
    import torch
    from torch import nn

    from lit_cifar.data.base import ImageDataModule


def read_checkpoint(path: str | Path) -> dict:
    import torch

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


class RunRefused(UserError):
    """A start refused because its run dir holds a run it would change; the folder is left as it was."""


@dataclass(frozen=True)
class Start:
    """How a run starts in its run dir."""

    ckpt_path: str | None = None  # what Lightning restores before training
    extended: bool = False  # trainer.max_epochs was raised: the lr schedule is re-planned to the new length
    finished: dict | None = None  # the run dir's metrics.json, when there is nothing to train


# Keys a resume may change, since they do not change what the run computes (where the data is read
# from, with how many workers, on which device index, what is shown and logged).
FREE_TO_CHANGE = (
    "ckpt_path",
    "rerun_failed",
    "optimized_metric",
    "data.num_workers",
    "data.download",
    "data.verify_checksums",
    "trainer.devices",
    "trainer.default_root_dir",  # the run dir itself: a run moved or copied elsewhere resumes there
    "callbacks.model_checkpoint.dirpath",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "callbacks.progress_bar",
    "callbacks.model_summary",
    "callbacks.lr_monitor",
    "logger",
)
RECORD = Path(".hydra") / "resolved.yaml"


def resolved_config(cfg: DictConfig, max_epochs: int | None = None) -> dict:
    """The run's config with every interpolation resolved and `data.root` made absolute (so evaluate and
    predict find the data from any directory): what `.hydra/resolved.yaml` and the checkpoints record.
    `max_epochs` replaces trainer.max_epochs first, so that what follows from it (a cosine's T_max)
    follows along."""
    if max_epochs is not None:
        cfg = copy.deepcopy(cfg)
        cfg.trainer.max_epochs = max_epochs
    config = OmegaConf.to_container(cfg, resolve=True)
    config["data"]["root"] = str(Path(cfg.data.root).resolve())
    return config


def _flat(config: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _derived(cfg: DictConfig, key: str) -> bool:
    """Whether the dotted `key` takes its value from another key (`module.optimizer.lr` is `${optim}`'s)."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        if OmegaConf.is_interpolation(node, part):
            return True
        node = node[part]
    return False


def config_changes(old: dict, new: dict, cfg: DictConfig) -> list[str]:
    """`key: old -> new` for each setting of `cfg` (resolved: `new`) that differs from `old` and changes
    what a run computes; keys that only follow another key are named when nothing else explains a change."""
    before, after = _flat(old), _flat(new)
    changed = [
        key
        for key in sorted(before.keys() | after.keys())
        if not key.startswith(FREE_TO_CHANGE) and before.get(key, Start) != after.get(key, Start)
    ]
    changed = [key for key in changed if not _derived(cfg, key)] or changed
    return [f"{key}: {before.get(key, '(unset)')} -> {after.get(key, '(unset)')}" for key in changed]


def _previous_config(run_dir: Path) -> dict:
    if (run_dir / RECORD).is_file():
        try:
            config = OmegaConf.to_container(OmegaConf.load(run_dir / RECORD))
        except Exception:  # cut short by a kill while it was written (before saves were atomic), or edited
            config = None
        if not isinstance(config, dict) or "trainer" not in config:
            raise RunRefused(f"{run_dir / RECORD} is not a readable run record; restore it, or start a new run")
        return config
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        return read_checkpoint(last)["run_config"]
    raise RunRefused(f"{run_dir} holds files but no lit_cifar run (no {RECORD}); pick another folder")


def _outcome(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise RunRefused(f"{path} is not readable JSON; move it away to resume this run") from None


def plan_start(cfg: DictConfig, run_dir: Path, new: bool, sweep_job: bool) -> Start:
    """What `cfg` does in `run_dir`, checked before anything is written there.

    A new folder starts from scratch (or from the checkpoint file `cfg.ckpt_path`). A folder that holds a
    run is continued only when asked (`ckpt_path=last`; a sweep job always is, since a re-run sweep and a
    re-queued cluster job run the same command) and only with the settings it was trained with, except
    that trainer.max_epochs may be raised to train it further. A finished run is left as it is, and so is a
    failed sweep job unless `rerun_failed=true`, and a pruned trial of a search."""
    if new:
        if cfg.ckpt_path == "last" and not sweep_job:
            raise UserError(
                f"nothing to resume: {run_dir} holds no run; pass the killed run's folder as "
                "hydra.run.dir=outputs/DATE/TIME with ckpt_path=last"
            )
        return Start(ckpt_path=None if cfg.ckpt_path == "last" else cfg.ckpt_path)
    fix = "use a new hydra.sweep.dir" if sweep_job else "start a new run without ckpt_path=last"
    if not sweep_job and cfg.ckpt_path != "last":
        raise RunRefused(f"{run_dir} already holds a run; add ckpt_path=last to resume it or pick a new hydra.run.dir")
    old = _previous_config(run_dir)
    old_epochs, epochs = old["trainer"]["max_epochs"], cfg.trainer.max_epochs
    changes = config_changes(old, resolved_config(cfg, max_epochs=old_epochs), cfg)
    if epochs < old_epochs:
        changes.append(f"trainer.max_epochs: {old_epochs} -> {epochs} (it may only be raised)")
    if changes:
        raise RunRefused(
            f"{run_dir} holds a run trained with other settings, which a resume would mix: {'; '.join(changes)}; "
            f"resume with its own settings (see {run_dir / RECORD}), or {fix}"
        )
    outcome = _outcome(run_dir)
    skip_failed = outcome.get("status") == "failed" and sweep_job and not cfg.rerun_failed
    pruned = outcome.get("status") == "pruned"  # a search's verdict on a trial: final
    if skip_failed or pruned or (outcome.get("status") == "ok" and epochs == old_epochs):
        return Start(finished=outcome)
    last = run_dir / "checkpoints" / "last.ckpt"
    return Start(ckpt_path=str(last) if last.is_file() else None, extended=epochs > old_epochs)


def check_resumable(cfg: DictConfig, module: nn.Module, path: str) -> None:
    """The checkpoint at `path` must be of the configured model and dataset."""
    ckpt = read_checkpoint(path)
    targets = (ckpt["run_config"]["model"]["_target_"], ckpt["run_config"]["data"]["_target_"])
    if targets != (cfg.model._target_, cfg.data._target_):
        raise UserError(
            f"{path} holds {trained_with(ckpt)} but this run configures model {_name(cfg.model._target_)} "
            f"on {_name(cfg.data._target_)}; use the options it was trained with, or another checkpoint"
        )
    check_fits(module, ckpt, path)


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
    from lit_cifar.data.batched import tta_logits

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
