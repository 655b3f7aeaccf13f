"""What a run ran on: the code's git commit, library versions, device and seed, for `metrics.json`."""

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import lightning.pytorch as pl
import torch

PACKAGES = ("torch", "torchvision", "lightning", "hydra-core", "omegaconf", "torchmetrics")


def git_state(folder: Path = Path(__file__).parent) -> dict[str, str | bool | None]:
    """The commit of the git checkout holding `folder` and whether it has uncommitted changes;
    None for both when the code is not in a git checkout (an installed wheel) or git is missing."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def run_record(trainer: pl.Trainer, seed: int) -> dict:
    device = trainer.strategy.root_device
    return {
        **git_state(),
        "versions": {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES}},
        "device": {
            "type": device.type,
            "name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "count": trainer.num_devices,
            "precision": str(trainer.precision),
        },
        "seed": seed,
    }


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
