"""`python -m benchmarks.screenshots` (`make screenshots`): docs/dashboards.md's TensorBoard screenshots, taken from a
real run and sweep by a real TensorBoard and headless Chromium. CI installs chromium (.ci/run): there a missing
browser fails the slow test with the script's one line, which names the package."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_process
from PIL import Image

from benchmarks.screenshots import CHROMIUM_PACKAGE, HPARAMS, IMAGES, Shot

TENSORBOARD_ORANGE = (245, 124, 0)  # its top bar, and the HParams table's tabs


def pixels(shot: Shot) -> tuple[int, int]:
    return round(shot.width * shot.scale), round(shot.height * shot.scale)


def text_lines(image: Image.Image, top: int) -> int:
    """Lines of dark text right of the sidebar, below `top`: bands of pixel rows holding a dark pixel."""
    region = image.convert("L").crop((450, top, image.width, image.height))
    dark = [min(region.crop((0, y, region.width, y + 1)).getdata()) < 100 for y in range(region.height)]
    return sum(1 for y, is_dark in enumerate(dark) if is_dark and (y == 0 or not dark[y - 1]))


@pytest.mark.slow
def test_screenshots_of_a_real_run_and_sweep(tmp_path: Path, cifar_slice: Path):
    proc = run_process("benchmarks.screenshots", "--out", str(tmp_path), "--data", str(cifar_slice), timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    for shot in (HPARAMS, IMAGES):
        image = Image.open(tmp_path / shot.file)
        assert (image.format, image.size) == ("PNG", pixels(shot))
    hparams = Image.open(tmp_path / HPARAMS.file).convert("RGB")
    band = [hparams.getpixel((x, 90)) for x in range(450, hparams.width)]
    assert band.count(TENSORBOARD_ORANGE) > len(band) / 2, "no HParams table (its tabs' orange band is missing)"
    assert text_lines(hparams, top=130) >= 6, "the HParams table lacks its header and five runs"
    images = Image.open(tmp_path / IMAGES.file).convert("RGB")
    assert len(images.getcolors(maxcolors=1 << 24)) > 10_000, "no images (a photograph has thousands of colours)"

    pids = [int(pid) for pid in re.findall(r"TensorBoard pid (\d+)", proc.stdout)]
    assert len(pids) == 2, proc.stdout
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()], "a TensorBoard server is still running"


def run_without_browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The script with a PATH that holds no chromium."""
    env = {**os.environ, "PATH": str(tmp_path / "no-browser-here")}
    command = [sys.executable, "-m", "benchmarks.screenshots", "--out", str(tmp_path / "out"), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_without_chromium_one_line_names_its_package(tmp_path: Path, cifar_root: Path):
    proc = run_without_browser(tmp_path, "--data", str(cifar_root))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: chromium is not installed, and the screenshots need it: {CHROMIUM_PACKAGE}"
    ]
    assert not (tmp_path / "out").exists()


def test_without_data_one_line_names_the_path(tmp_path: Path):
    proc = run_without_browser(tmp_path, "--data", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: --data={tmp_path / 'nowhere'} holds no cifar-10-batches-py/: point it at the CIFAR-10 slice"
    ]
