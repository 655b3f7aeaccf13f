import os
import shutil
import tempfile
from pathlib import Path

import pytest

from slurm.cluster import SlurmCluster, Unavailable, install_packages


@pytest.fixture(scope="session")
def slurm_cluster():
    """One real SLURM cluster for the session, in a temporary folder removed afterwards. Skipped where its
    Debian packages are missing and cannot be installed, unless LIT_CIFAR_REQUIRE_SLURM=1 (CI) makes that a failure."""
    try:
        install_packages()
    except Unavailable as why:
        if os.environ.get("LIT_CIFAR_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM is required here (LIT_CIFAR_REQUIRE_SLURM=1): {why}")
        pytest.skip(f"no SLURM: {why}")
    # Not under pytest's tmp_path: munged refuses a socket inside a folder that not everyone may enter.
    root = Path(tempfile.mkdtemp(prefix="lit_cifar-slurm-"))
    root.chmod(0o755)
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def slurm(slurm_cluster, monkeypatch) -> SlurmCluster:
    """The cluster, with SLURM_CONF pointing at it for the commands a test runs (and the jobs they submit)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster
