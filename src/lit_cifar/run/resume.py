"""Resume policy: what a start does in its run dir, decided before anything is written there.

A run goes on only from a checkpoint of exactly its own settings (trainer.max_epochs may be raised, which
re-plans the lr schedule: see LitClassifier.on_load_checkpoint), whether that checkpoint is the newest one
of its own folder (`ckpt_path=last`, a sweep job) or a file named by `ckpt_path=`; the record says which."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from lit_cifar.run.checkpoints import _name, check_fits, newest_checkpoint, read_checkpoint, trained_with
from lit_cifar.run.commands import command
from lit_cifar.run.config import config_changes, resolved_config
from lit_cifar.run.errors import RunRefused, UserError
from lit_cifar.run.folders import is_sweep_dir, read_stored
from lit_cifar.run.record import FINAL, RESOLVED, read_outcome

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Start:
    """How a run starts in its run dir: `kind` is new, resumed, extended or from_checkpoint (recorded in
    metrics.json as `start`, with `source_checkpoint`)."""

    kind: str = "new"
    ckpt_path: str | None = None  # what Lightning restores before training
    finished: dict | None = None  # the run dir's metrics.json, when there is nothing to train

    def record(self) -> dict:
        return {"start": self.kind, "source_checkpoint": self.ckpt_path}


def _previous_config(run_dir: Path) -> dict:
    """The resolved config a run in `run_dir` was started with: its record, or without one its newest checkpoint's;
    a folder that holds neither, a sweep's or one of other files, is refused as holding no run to go on with."""
    if is_sweep_dir(run_dir):
        raise RunRefused(
            f"{run_dir} is a sweep dir; pass one of its job folders as hydra.run.dir, or re-run the sweep with "
            f"{command('rerun', str(run_dir))}"
        )
    if (run_dir / RESOLVED).is_file():
        try:
            config = read_stored(run_dir / RESOLVED)
        except Exception:  # cut short by a kill while it was written, or edited
            config = None
        return _recorded(config, f"{run_dir / RESOLVED} is not a readable run record; restore it, or start a new run")
    last = newest_checkpoint(run_dir / "checkpoints")
    if last is not None:
        return _trained_config(read_checkpoint(last), last)
    raise RunRefused(f"{run_dir} holds files but no lit_cifar run; pick an empty or new folder")


def _recorded(config: object, unreadable: str) -> dict:
    """`config`, a run's resolved config read from a file, when it has a run's shape (its trainer.max_epochs, its
    model's and data's classes); else a refusal saying `unreadable`. It stays data: compared, never built."""

    def value(dotted: str) -> object:
        node = config
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node

    classes = (value("model._target_"), value("data._target_"))
    if type(value("trainer.max_epochs")) is not int or not all(isinstance(name, str) for name in classes):
        raise RunRefused(unreadable)
    return config


def _trained_config(ckpt: dict, path: str | Path) -> dict:
    """The resolved config the checkpoint `ckpt` (read from `path`) was trained with."""
    return _recorded(ckpt["run_config"], f"{path} holds no readable run config; pass another checkpoint")


def refuse_other_settings(old: dict, cfg: DictConfig, where: str, fix: str) -> None:
    """Refuse going on from a run trained with `old` (its resolved config) under `cfg`: every setting that
    changes what a run computes must be the same, except that trainer.max_epochs may be raised."""
    old_epochs, epochs = old["trainer"]["max_epochs"], cfg.trainer.max_epochs
    changes = config_changes(old, resolved_config(cfg, max_epochs=old_epochs), cfg)
    if epochs < old_epochs:
        changes.append(f"trainer.max_epochs: {old_epochs} -> {epochs} (it may only be raised)")
    if changes:
        raise RunRefused(f"{where} holds a run trained with other settings, which a resume would mix: "
                         f"{'; '.join(changes)}; {fix}")  # fmt: skip


def plan_start(cfg: DictConfig, run_dir: Path, new: bool, sweep_job: bool) -> Start:
    """What `cfg` does in `run_dir`, checked before anything is written there.

    A new folder starts from scratch, or from the checkpoint file `cfg.ckpt_path` when that checkpoint was
    trained with this run's settings. A folder that holds a run is continued only when asked
    (`ckpt_path=last`; a sweep job always is, since a re-run sweep and a re-queued cluster job run the same
    command), from its newest checkpoint and only with the settings it was trained with, except that
    trainer.max_epochs may be raised to train it further. A finished run is left as it is, and so is a
    failed sweep job unless `rerun_failed=true`, and a pruned trial of a search."""
    if new:
        if cfg.ckpt_path == "last" and not sweep_job:
            raise UserError(
                f"nothing to resume: {run_dir} holds no run; pass the killed run's folder as "
                "hydra.run.dir=outputs/DATE/TIME with ckpt_path=last"
            )
        if cfg.ckpt_path in (None, "last"):
            return Start()
        ckpt = read_checkpoint(cfg.ckpt_path)
        old = _trained_config(ckpt, cfg.ckpt_path)
        check_same_model(cfg, ckpt, cfg.ckpt_path)
        refuse_other_settings(
            old, cfg, cfg.ckpt_path, "train on from it with its own settings (they are in the checkpoint's run "
            "dir, .hydra/resolved.yaml), or start without ckpt_path",
        )  # fmt: skip
        return Start("from_checkpoint", str(Path(cfg.ckpt_path).resolve()))
    fix = "use a new hydra.sweep.dir" if sweep_job else "start a new run without ckpt_path=last"
    old = _previous_config(run_dir)
    if not sweep_job and cfg.ckpt_path != "last":
        raise RunRefused(f"{run_dir} already holds a run; add ckpt_path=last to resume it or pick a new hydra.run.dir")
    refuse_other_settings(old, cfg, str(run_dir), f"resume with its own settings (see {run_dir / RESOLVED}), or {fix}")
    outcome = read_outcome(run_dir)
    status = outcome.get("status")
    if status == "unreadable":
        raise RunRefused(f"{outcome['reason']}; move it away to resume this run")
    skip_failed = status == "failed" and sweep_job and not cfg.rerun_failed
    pruned = status == "pruned"  # a search's verdict on a trial: final
    if skip_failed or pruned or (status in FINAL and cfg.trainer.max_epochs == old["trainer"]["max_epochs"]):
        return Start(finished=outcome)
    last = newest_checkpoint(run_dir / "checkpoints")
    if last is None:
        return Start("new")
    # what Lightning restores (weights, optimizer, schedule) is the checkpoint's, whatever the record says
    trained = _trained_config(read_checkpoint(last), last)
    refuse_other_settings(trained, cfg, str(last), f"resume with the settings it was trained with, or {fix}")
    kind = "extended" if cfg.trainer.max_epochs > old["trainer"]["max_epochs"] else "resumed"
    return Start(kind, str(last))


def check_same_model(cfg: DictConfig, ckpt: dict, path: str) -> None:
    """The checkpoint at `path` must be of the configured model and dataset."""
    targets = (ckpt["run_config"]["model"]["_target_"], ckpt["run_config"]["data"]["_target_"])
    if targets != (cfg.model._target_, cfg.data._target_):
        raise UserError(
            f"{path} holds {trained_with(ckpt)} but this run configures model {_name(cfg.model._target_)} "
            f"on {_name(cfg.data._target_)}; use the options it was trained with, or another checkpoint"
        )


def check_resumable(cfg: DictConfig, module: nn.Module, path: str) -> None:
    """The checkpoint at `path` must be of the configured model and dataset, with weights that fit `module`."""
    ckpt = read_checkpoint(path)
    check_same_model(cfg, ckpt, path)
    check_fits(module, ckpt, path)
