"""What a run ran on: the code's git commit, library versions, device and seed, for `metrics.json`."""

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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


def provenance(trainer, seed: int) -> dict:
    """What a run ran on (a Lightning Trainer's device and precision), for its metrics.json."""
    import torch

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
