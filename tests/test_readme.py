"""The README's command blocks, run in order as a user types them, in a fresh folder holding a fresh copy of the
slice (one epoch where the README trains three): each exits 0. The first block (`make train` without arguments
downloads CIFAR-10; `make test` is this suite) is the install note, not a step."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

from benchmarks.figures import PRINTED_RUN as README_RUN  # the run folder the README's step 4 names

ROOT = Path(__file__).resolve().parents[1]


def command_blocks() -> list[list[str]]:
    """The README's ```bash blocks, each as its command lines (comments and blank lines left out)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [[line.split("  #")[0].strip() for line in block.splitlines() if line.strip()] for block in blocks]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serves_tensorboard(command: str, cwd: Path) -> list:
    """`make tensorboard` on 127.0.0.1 and a free port: the runs it lists once it lists any (within a minute);
    stopped by its process group, which this test started."""
    port = free_port()
    args = shlex.split(command) + [f"ARGS=--host 127.0.0.1 --port {port}"]
    server = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        for _ in range(600):
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                runs = json.loads(urlopen(f"http://127.0.0.1:{port}/data/runs").read())
                if runs:
                    return runs
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("make tensorboard listed no run within a minute")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_the_readme_runs_as_written_on_a_fresh_copy_of_the_slice(tmp_path, cifar_slice):
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    shutil.copytree(cifar_slice, tmp_path / "data" / "cifar10-slice")
    steps = [line for block in command_blocks()[1:] for line in block]
    assert [step.split()[:2] for step in steps] == [
        ["make", "train"],
        ["make", "sweep"],
        ["make", "tensorboard"],
        [".venv/bin/python", "-m"],
        [".venv/bin/python", "-m"],
    ]
    run_dir = None
    for step in steps:
        step = step.replace("trainer.max_epochs=3", "trainer.max_epochs=1")
        if step == "make tensorboard":
            runs = serves_tensorboard(step, tmp_path)
            assert any(run.startswith("outputs/") for run in runs) and any(run.startswith("multirun/") for run in runs)
            continue
        if run_dir is not None:
            step = step.replace(README_RUN, run_dir)
        done = subprocess.run(shlex.split(step), cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{step}\n{done.stderr[-3000:]}"
        if run_dir is None:
            (first,) = (tmp_path / "outputs").glob("*/*")
            run_dir = str(first.relative_to(tmp_path))
    assert "test:4 (true " in done.stdout  # predict, the last step, named the five images
