"""`python -m benchmarks.screenshots [--out DIR] [--data PATH]` (`make screenshots`): the two TensorBoard screenshots
of docs/dashboards.md, taken from a real run and a real sweep.

In a temporary folder, through the command a user types: a run of week11_cnn with scheduler=step, and a sweep of
four lrs, each two epochs of a few batches on the CIFAR-10 slice (a minute or two on a 2-core CPU). Then a
TensorBoard server on a free loopback port and Debian's headless Chromium: over the run and the sweep,
`tensorboard_hparams.png` (the HParams table, its columns those callbacks.hparams.shown picks); over the run alone,
`tensorboard_images.png` (its Images tab: the confusion matrix and the mistakes at test, the training images). Each
server is stopped by its process id, and the temporary folder is removed."""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.error import URLError
from urllib.request import urlopen

from lit_cifar.run.errors import UserError, exit_on_user_error

CHROMIUM_PACKAGE = "apt-get install -y --no-install-recommends chromium"
COMMON = [
    "trainer=cpu", "model=week11_cnn", "data.verify_checksums=false", "data.download=false", "data.num_workers=0",
    "data.val_size=500", "trainer.max_epochs=2", "trainer.limit_train_batches=10",
]  # fmt: skip
RUN = ["name=single", "scheduler=step"]
SWEEP = ["name=sweep", "scheduler=none", "optim.lr=5e-4,1e-3,2e-3,4e-3"]  # one key: the run column shows it whole


@dataclass(frozen=True)
class Shot:
    """A screenshot: the file, the TensorBoard tab (the URL's fragment) and the browser window's size."""

    file: str
    tab: str
    width: int  # CSS pixels; the PNG has scale times as many
    height: int
    scale: float = 1.0


HPARAMS = Shot("tensorboard_hparams.png", "hparams", 2000, 440)
# Narrow, and drawn at twice the pixels: TensorBoard shows each image in a card of fixed size.
IMAGES = Shot("tensorboard_images.png", "images", 1100, 1010, scale=2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.screenshots",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="docs", help="the folder the two PNG files are written into")
    parser.add_argument("--data", default="data/cifar10-slice", help="holds cifar-10-batches-py/ (the slice)")
    return parser.parse_args(argv)


def chromium() -> str:
    """The headless browser's path; a UserError naming its Debian package when it is not installed."""
    found = shutil.which("chromium")
    if found is None:
        raise UserError(f"chromium is not installed, and the screenshots need it: {CHROMIUM_PACKAGE}")
    return found


def train(folder: Path, data: Path, overrides: list[str], multirun: bool = False) -> None:
    """`python -m lit_cifar.train [-m] …` in `folder`, so that its outputs/ and multirun/ are there."""
    mode = ["-m"] if multirun else []
    command = [sys.executable, "-m", "lit_cifar.train", *mode, *COMMON, f"data.root={data}", *overrides]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def runs_served(url: str) -> int:
    """How many runs the TensorBoard at `url` has loaded; -1 while it does not answer yet."""
    try:
        with urlopen(f"{url}/data/runs", timeout=5) as answer:
            return len(json.load(answer))
    except (URLError, OSError):
        return -1


@contextmanager
def tensorboard(folder: Path, logdir: Path, runs: int) -> Iterator[str]:
    """The URL of a TensorBoard started in `folder` over `logdir` (relative: the page shows it) on a free loopback
    port, once it serves all `runs` (within two minutes); stopped by its process id. One process: the fast loader
    would start a data server of its own."""
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
               "--port", str(port), "--load_fast=false"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a full pipe would stall the server
        server = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=log)
        print(f"TensorBoard pid {server.pid} at {url} over {folder / logdir}", flush=True)
        try:
            wait_until_served(server, url, runs, log)
            yield url
        finally:
            if server.poll() is None:
                os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def wait_until_served(server: subprocess.Popen, url: str, runs: int, log: IO[str]) -> None:
    deadline = time.monotonic() + 120
    while runs_served(url) < runs:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"TensorBoard ended:\n{log.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"TensorBoard at {url} did not serve {runs} runs within two minutes")
        time.sleep(0.5)


def screenshot(browser: str, url: str, shot: Shot, out: Path) -> None:
    """`shot` of the page at `url`, by headless Chromium in a fresh profile; the page gets 20 s of virtual time to
    fetch and draw its data."""
    target = out / shot.file
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--window-size={shot.width},{shot.height}",
            f"--force-device-scale-factor={shot.scale}", "--virtual-time-budget=20000", f"--screenshot={target}",
            f"{url}/#{shot.tab}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not target.is_file():
        raise RuntimeError(f"chromium did not write {target}:\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> None:
    with exit_on_user_error():
        args = parse_args(argv)
        data = Path(args.data).resolve()
        if not (data / "cifar-10-batches-py").is_dir():
            raise UserError(f"--data={args.data} holds no cifar-10-batches-py/: point it at the CIFAR-10 slice")
        browser = chromium()
        with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
            folder = Path(tmp)
            print(f"a run and a sweep of four lrs on {data}, in {folder} (a minute or two on a 2-core CPU)", flush=True)
            train(folder, data, RUN)
            train(folder, data, SWEEP, multirun=True)
            shots = folder / "shots"  # both or neither replace the pair in --out
            shots.mkdir()
            with tensorboard(folder, Path("."), runs=5) as url:
                screenshot(browser, url, HPARAMS, shots)
            (run_dir,) = (folder / "outputs" / "single").iterdir()
            with tensorboard(folder, run_dir.relative_to(folder), runs=1) as url:
                screenshot(browser, url, IMAGES, shots)
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for shot in (HPARAMS, IMAGES):
                shutil.copyfile(shots / shot.file, out / shot.file)
                print(f"wrote {out / shot.file}", flush=True)


if __name__ == "__main__":
    main()
