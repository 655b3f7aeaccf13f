"""What a benchmark ran on, said once for every table benchmarks write (`make bench`, `make figures`)."""

import os
from importlib.metadata import version
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (Linux); the platform's processor string elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    import platform

    return platform.processor() or "unknown CPU"


def machine() -> dict:
    """The CPU (model, cores, the threads torch uses), the GPU or none, and the torch and Lightning versions."""
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
        "torch": torch.__version__,
        "lightning": version("lightning"),
    }


def describe(found: dict) -> str:
    """One line: `AMD EPYC, 2 cores (2 torch threads), GPU none; torch 2.14.1, Lightning 2.6.6`."""
    return (
        f"{found['cpu']}, {found['cores']} cores ({found['cpu_threads']} torch threads), GPU {found['gpu']}; "
        f"torch {found['torch']}, Lightning {found['lightning']}"
    )
