import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import CIFAR10

REPO = Path(__file__).resolve().parents[1]
CIFAR_SLICE = REPO.parent / "shared" / "data" / "cifar10-slice"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root: Path, per_batch: int = 20, test_size: int = 40, seed: int = 0) -> Path:
    """A tiny CIFAR-10 in the official pickle layout; class c is brighter in channel c % 3,
    so a model can learn it in a few steps."""
    rng = np.random.default_rng(seed)
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)

    def batch(n: int, label: str) -> dict:
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 120, (n, 3, 32, 32), dtype=np.uint8)
        for i, c in enumerate(labels):
            images[i, c % 3] += np.uint8(10 * c + 30)
        return {"batch_label": label, "labels": labels.tolist(), "data": images.reshape(n, -1),
                "filenames": [f"{label}_{i}.png" for i in range(n)]}

    for name, _ in CIFAR10.train_list:
        (folder / name).write_bytes(pickle.dumps(batch(per_batch, name)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(test_size, "test_batch")))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CLASSES, "num_vis": 3072}))
    return root


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    return write_cifar(tmp_path / "data")


@pytest.fixture
def cifar_slice() -> Path:
    if not (CIFAR_SLICE / CIFAR10.base_folder).is_dir():
        pytest.skip(f"the real CIFAR-10 slice is not at {CIFAR_SLICE}")
    return CIFAR_SLICE


def tiny_cifar_overrides(root: Path) -> list[str]:
    """Overrides for a CPU run on the tiny fixture."""
    return [f"data.root={root}", "data.verify_checksums=false", "data.download=false", "data.val_size=20",
            "data.batch_size=16", "data.num_workers=0", "trainer=cpu", "callbacks.progress_bar=null"]


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m <module> args` the way a user does, capturing output."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
