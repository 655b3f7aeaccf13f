"""Facts about a run's config: the resolved form a run records, the keys a resume may change, what changed
between two configs, and the one-line-per-group summary a start logs."""

import copy
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# Keys a resume may change, since they do not change what the run computes (where the data is read
# from, with how many workers, on which device index, what is shown and logged).
FREE_TO_CHANGE = (
    "name",  # name= and tags= label a run: runs that differ only in them are one setting
    "tags",
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
    "callbacks.epoch_log",  # console lines only (runs before 2026-12-07 recorded a name for them)
    "callbacks.model_summary",
    "callbacks.hparams",  # the columns logged to TensorBoard's HParams (runs before 2026-12-07 had no name, tags)
    "callbacks.lr_monitor",
    "logger",
)


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


def flattened(config: dict, prefix: str = "") -> dict[str, object]:
    """{`a.b.c`: value} of every leaf of the nested `config` (an empty mapping is a leaf)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flattened(value, f"{prefix}{key}."))
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
    what a run computes; keys that only follow another key are named when nothing else explains a change. A key
    one side lacks and the other sets to null is the same setting: a key added since, with null for its default."""
    before, after = flattened(old), flattened(new)
    changed = [
        key
        for key in sorted(before.keys() | after.keys())
        if not key.startswith(FREE_TO_CHANGE) and before.get(key) != after.get(key)
    ]
    changed = [key for key in changed if not _derived(cfg, key)] or changed
    return [f"{key}: {before.get(key, '(unset)')} -> {after.get(key, '(unset)')}" for key in changed]


def _settings(group: dict, skip: tuple[str, ...] = ()) -> str:
    """`lr=0.001 weight_decay=0.0`: a config group's resolved values, without Hydra's `_target_`/`_partial_`."""
    flat = []
    for key, value in group.items():
        if key.startswith("_") or key in skip:
            continue
        if isinstance(value, dict):
            flat += [f"{key}.{part}" for part in _settings(value).split(" ") if part]
        else:
            flat.append(f"{key}={value}")
    return " ".join(flat)


def config_summary(config: dict, choices: dict, run_dir: str) -> str:
    """The resolved config of a run as one line per group, `group (option): key=value …`, for its log."""
    groups = {
        "data": _settings(config["data"]),
        "model": _settings(config["model"]),
        "optim": _settings(config["optim"]),
        "scheduler": _settings(config["scheduler"] or {}),
        "trainer": _settings(config["trainer"], skip=("default_root_dir",)),
        "module": _settings(config["module"], skip=("net", "optimizer", "scheduler")),
        "callbacks": ", ".join(name for name, value in config["callbacks"].items() if value),
        "logger": ", ".join(name for name, value in (config.get("logger") or {}).items() if value),
    }
    width = max(len(f"{group} ({choices.get(group)})") for group in groups)
    lines = [
        f"  {(group + (f' ({choices[group]})' if choices.get(group) else '')).ljust(width)}  {values}"
        for group, values in groups.items()
    ]
    return "\n".join([f"seed {config['seed']}, run dir {run_dir}; the whole config is in .hydra/resolved.yaml", *lines])
