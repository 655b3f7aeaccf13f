import hashlib
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.request import Request, urlopen

import lightning.pytorch as pl
import numpy as np
import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from torchvision.datasets import CIFAR10

REPO = Path(__file__).resolve().parents[1]
CIFAR_SLICE = REPO.parent / "shared" / "data" / "cifar10-slice"
MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
# What conf/callbacks/default.yaml's HParamsSummary gives every logger for week11_cnn on the tiny fixture
# (tiny_cifar_overrides, lr 0.002, 3 epochs; cosine has no gamma or step size: n/a).
WEEK11_HPARAMS = {
    "lr": 0.002,
    "batch_size": 16,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "max_epochs": 3,
    "seed": 42,
    "model": "week11_cnn",
    "dataset": "cifar10",
    "optimizer": "adam",
    "scheduler": "cosine",
    "dropout": "0.0",
    "gamma": "n/a",
    "step_size": "n/a",
    "name": "n/a",  # no name=
    "tags": "",  # no tags=
}
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# `make test` runs the suite on every core (pytest-xdist, --dist loadgroup): the tests of one shared resource run one
# after another on one worker. One SLURM cluster serves the session, and one GPU serves its tests.
ONE_AT_A_TIME = ("slurm", "gpu")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in ONE_AT_A_TIME:
            if item.get_closest_marker(mark):
                item.add_marker(pytest.mark.xdist_group(mark))


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
        return {
            "batch_label": label,
            "labels": labels.tolist(),
            "data": images.reshape(n, -1),
            "filenames": [f"{label}_{i}.png" for i in range(n)],
        }

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
    return [
        f"data.root={root}",
        "data.verify_checksums=false",
        "data.download=false",
        "data.val_size=20",
        "data.batch_size=16",
        "data.num_workers=0",
        "trainer=cpu",
        "callbacks.progress_bar=null",
    ]


# What only a fresh process shows: a signal sent to the run (it would stop the tests), Lightning's ddp (it starts
# the command again as a script), the cluster, MLflow's and W&B's runs (finished as their process exits), and
# `rerun` (it replaces its own process with the sweep's).
FRESH_PROCESS = ("callbacks.kill", "ddp", "hydra/launcher=slurm", "mlflow", "wandb")


def run_cli(
    module: str, *args: str, cwd: Path | None = None, timeout: int = 600, fresh_process: bool = False
) -> subprocess.CompletedProcess:
    """Run `python -m <module> args` as a user does at a terminal, capturing its output and exit status: in this
    process (the command's own entry, with its argv, working directory and streams), or in a fresh one where the
    contract is about a process (`FRESH_PROCESS`, `fresh_process=True`, LIT_CIFAR_TEST_PROCESSES=1)."""
    fresh = fresh_process or module == "lit_cifar.rerun" or os.environ.get("LIT_CIFAR_TEST_PROCESSES") == "1"
    if fresh or any(marker in arg for arg in args for marker in FRESH_PROCESS):
        return run_process(module, *args, cwd=cwd, timeout=timeout)
    return run_in_process(module, *args, cwd=cwd)


def run_process(module: str, *args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """In a fresh process. Ctrl-C's SIGINT is restored for it: started from a background job (`make test &`), it
    would inherit SIGINT ignored."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd or REPO, env=env, capture_output=True, text=True,
        timeout=timeout, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def run_in_process(module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """As `python -m module args` would run: the module's `__main__` block (its entry) with that argv, in `cwd`;
    the exit status from SystemExit, 1 and the traceback on stderr for an uncaught exception."""
    import contextlib
    import io
    import runpy
    import traceback
    import warnings

    import torch

    from lit_cifar.run.dirs import LOCKS, release

    out, err = io.StringIO(), io.StringIO()
    argv, here, environ = sys.argv, os.getcwd(), dict(os.environ)
    code, held_before = 0, set(LOCKS)
    try:
        os.chdir(cwd or REPO)
        sys.argv = [module, *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PYTHONWARNINGS=ignore, as for a fresh process
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=False)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = argv
        os.chdir(here)
        os.environ.clear()
        os.environ.update(environ)
        for fd in LOCKS - held_before:  # the locks of a sweep stopped before its end, which its process's end frees
            release(fd)
        torch.use_deterministic_algorithms(False)  # trainer.deterministic=true sets it for the whole process
        for handler in logging.getLogger().handlers:  # the run's log file and console, as its process end would
            handler.close()
        logging.getLogger().handlers.clear()
    return subprocess.CompletedProcess([sys.executable, "-m", module, *args], code, out.getvalue(), err.getvalue())


def job_results(sweep_dir: Path, swept: int) -> dict[str, dict | None]:
    """{"model=week11_cnn": contents of metrics.json} for every job of a multirun, keyed by the
    job's first `swept` overrides."""
    results = {}
    for job in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()):
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        metrics = job / "metrics.json"
        results[",".join(overrides[:swept])] = json.loads(metrics.read_text()) if metrics.exists() else None
    return results


def assert_every_model_passes_a_fast_dev_run(data_overrides: list[str], sweep_dir: Path) -> None:
    """One multirun over every model config with `trainer.fast_dev_run=true`; each job must test."""
    proc = run_cli(
        "lit_cifar.train",
        "-m",
        f"model={','.join(MODELS)}",
        "trainer.fast_dev_run=true",
        *data_overrides,
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = job_results(sweep_dir, swept=1)
    assert sorted(results) == [f"model={m}" for m in MODELS]
    for overrides, record in results.items():
        assert record is not None, f"{overrides} wrote no metrics.json"
        assert 0.0 <= record["metrics"]["test/acc"] <= 1.0, overrides
        assert record["status"] == "smoke" and not record["tested_checkpoint"], overrides  # never a result


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The run dir of one epoch of week11_cnn on the tiny CIFAR fixture (its data in `../data`), trained once
    for the tests that read checkpoints; they must leave it as it is. It is trained with a relative
    data.root, as a user would type it, and read back from another working directory."""
    root = write_cifar(tmp_path_factory.mktemp("trained") / "data")
    run_dir = root.parent / "run"
    result = run_cli(
        "lit_cifar.train",
        *tiny_cifar_overrides(Path("data")),
        "model=week11_cnn",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run_dir}",
        cwd=root.parent,
    )
    assert result.returncode == 0, result.stderr
    return run_dir


class SignalAtStep(pl.Callback):
    """Sends `signum` to its own process after training step `step`: a kill at a known point mid-epoch.
    With `once`, only the first time (it creates that file), so a resumed run with the same config goes on;
    with `job`, only in the sweep job of that number. Tests add it as `+callbacks.kill` (PYTHONPATH=tests)."""

    def __init__(self, step: int, signum: int, once: str | None = None, job: int | None = None) -> None:
        self.step, self.signum, self.once, self.job = step, signum, once, job

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step != self.step or (self.job is not None and HydraConfig.get().job.num != self.job):
            return
        if self.once:
            if Path(self.once).exists():
                return
            Path(self.once).touch()
        os.kill(os.getpid(), self.signum)


def killed_at(step: int, signum: int, once: Path | None = None, job: int | None = None) -> list[str]:
    """Overrides that add SignalAtStep to a run (run_cli with PYTHONPATH=tests)."""
    args = ["+callbacks.kill._target_=conftest.SignalAtStep", f"+callbacks.kill.step={step}"]
    args.append(f"+callbacks.kill.signum={int(signum)}")
    if once is not None:
        args.append(f"+callbacks.kill.once={once}")
    if job is not None:
        args.append(f"+callbacks.kill.job={job}")
    return args


def file_hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`: what must not change."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@contextmanager
def served(command: list, ready: Callable[[str], bool]) -> Iterator[str]:
    """The URL of a real server started with `command` + a free port on 127.0.0.1, once `ready(url)` holds
    (within a minute); stopped by its pid."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([*command, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                raise AssertionError(f"{command[0]} ended: {server.stderr.read().decode()[-2000:]}")
            try:
                if ready(url):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"{command[0]} was not ready within a minute")
        yield url
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def get(url: str, body: dict | None = None) -> dict | list:
    """The JSON a server answers at `url` (a POST of `body` when given)."""
    data = None if body is None else json.dumps(body).encode()
    request = Request(url, data=data, headers={"Content-Type": "application/json"})
    return json.loads(urlopen(request).read())


class WritesPid(pl.Callback):
    """Appends `job pid` to `path` when a run starts fitting: which process ran which sweep job. Tests add it as
    `+callbacks.pid` (PYTHONPATH=tests)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_fit_start(self, trainer, *args) -> None:
        with open(self.path, "a") as f:
            f.write(f"{HydraConfig.get().job.num} {os.getpid()}\n")
