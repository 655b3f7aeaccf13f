"""Data is data: nothing a CIFAR-10 pickle holds runs code, whatever data.verify_checksums says, and an image
reaches the net as the 8-bit picture its file holds, whatever its mode."""

import codecs
import io
import os
import pickle
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, run_cli, tiny_cifar_overrides, write_cifar
from PIL import Image
from test_cifar10 import datamodule
from test_console import user_warnings  # noqa: F401 (a fixture)
from test_errors import assert_one_line_error
from torchvision.datasets import CIFAR10

from lit_cifar.data import cifar10
from lit_cifar.data.images import grayscale, rgb
from lit_cifar.predict import read_image
from lit_cifar.run.errors import UserError


class Payload:
    """Unpickled with the full unpickler, it calls `call(*args)`: code run by a data file."""

    def __init__(self, call, *args) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def with_payload(path: Path, payload: object) -> None:
    """The pickle at `path`, still looking like CIFAR-10, with `payload` inside."""
    entry = pickle.loads(path.read_bytes())
    entry["filenames" if "filenames" in entry else "num_vis"] = payload
    path.write_bytes(pickle.dumps(entry))


@pytest.mark.parametrize(
    ("name", "verify", "message"),
    [
        ("batches.meta", "true", "does not match the official CIFAR-10 checksum"),
        ("batches.meta", "false", "holds code (a pickle of posix.mkdir), not CIFAR-10 data; replace it"),
        ("data_batch_1", "false", "holds code (a pickle of posix.mkdir), not CIFAR-10 data; replace it"),
    ],
)
def test_code_in_a_cifar_pickle_never_runs(tmp_path, name, verify, message):
    root = write_cifar(tmp_path / "data")
    marker = tmp_path / "pwned"
    with_payload(root / CIFAR10.base_folder / name, Payload(os.mkdir, str(marker)))
    overrides = [o for o in tiny_cifar_overrides(root) if not o.startswith("data.verify_checksums=")]

    result = run_cli(
        "lit_cifar.train",
        *overrides,
        f"data.verify_checksums={verify}",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )

    assert not marker.exists()
    assert result.returncode == 2, result.stderr[-3000:]
    assert_one_line_error(result, f"{root / CIFAR10.base_folder / name} ", message)


PAYLOADS = {  # what each would run, given the marker's path
    "builtins.eval": lambda marker: Payload(eval, f"open({str(marker)!r}, 'w')"),
    "numpy.save": lambda marker: Payload(np.save, str(marker), np.zeros(1)),  # numpy, but not an array's rebuilding
    "builtins.getattr": lambda marker: Payload(np.ndarray.tofile, np.zeros(1), str(marker)),  # getattr(ndarray, …)
    "codecs.open": lambda marker: Payload(codecs.open, str(marker), "w"),
}


@pytest.mark.parametrize("named", PAYLOADS)
def test_only_numpy_array_reconstruction_is_admitted(tmp_path, named):
    path = write_cifar(tmp_path / "data") / CIFAR10.base_folder / "test_batch"
    with_payload(path, PAYLOADS[named](tmp_path / "pwned.npy"))
    with pytest.raises(UserError, match=rf"test_batch holds code \(a pickle of {re.escape(named)}\)"):
        cifar10.unpickle(path)
    assert not (tmp_path / "pwned.npy").exists()


def test_bytes_are_decoded_only_from_latin1(tmp_path):
    """A protocol-2 pickle stores bytes as `_codecs.encode(text, "latin1")`; another codec is refused."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x04\x00\x00\x00x.pyX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(UserError, match=r"data_batch_1 holds code \(a pickle of _codecs.encode to 'base64'\)"):
        cifar10.unpickle(path)


class Python2Pickler(pickle._Pickler):
    """What Python 2's cPickle wrote for the official CIFAR-10 files: text and bytes as byte strings, numpy's
    array reconstruction under `numpy.core` (its name before numpy 2)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_byte_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        short = len(data) < 256
        size = bytes([len(data)]) if short else struct.pack("<i", len(data))
        self.write((pickle.SHORT_BINSTRING if short else pickle.BINSTRING) + size + data)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = save_byte_string

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__name__}\n".encode())
        self.memoize(obj)


def python2_pickle(entry: dict) -> bytes:
    out = io.BytesIO()
    Python2Pickler(out, protocol=2).dump(entry)
    return out.getvalue()


WRITERS = {
    "python 2 (the official files)": python2_pickle,
    "protocol 2 (_codecs.encode)": lambda entry: pickle.dumps(entry, protocol=2),
    "protocol 4": lambda entry: pickle.dumps(entry, protocol=4),
    "protocol 5 (_frombuffer)": lambda entry: pickle.dumps(entry, protocol=5),
    "numpy scalar labels": lambda entry: pickle.dumps(relabelled(entry, lambda labels: list(np.array(labels)))),
    "labels as an array": lambda entry: pickle.dumps(relabelled(entry, np.array)),
}


def relabelled(entry: dict, change) -> dict:
    return {**entry, "labels": change(entry["labels"])} if "labels" in entry else entry


@pytest.mark.parametrize("writer", WRITERS)
def test_every_way_a_cifar_pickle_is_written_reads_the_same(tmp_path, writer):
    folder = write_cifar(tmp_path / "data") / CIFAR10.base_folder
    originals = {name: pickle.loads((folder / name).read_bytes()) for name in ("test_batch", "batches.meta")}
    for name, entry in originals.items():
        (folder / name).write_bytes(WRITERS[writer](entry))

    images, labels = cifar10.read_batches(folder, CIFAR10.test_list, False, 10)

    assert np.array_equal(images.numpy(), originals["test_batch"]["data"].reshape(-1, 3, 32, 32))
    assert labels.tolist() == list(originals["test_batch"]["labels"])
    assert cifar10.unpickle(folder / "batches.meta")["label_names"] == CLASSES


def test_the_real_slice_reads_as_its_pickles_hold_it(cifar_slice):
    """The files are trusted here: the full unpickler gives what the restricted one must."""
    folder = cifar_slice / CIFAR10.base_folder
    dm = datamodule(cifar_slice, val_size=500)
    splits = dm.load()
    for split, files in (("train", CIFAR10.train_list), ("test", CIFAR10.test_list)):
        entries = [pickle.loads((folder / name).read_bytes(), encoding="latin1") for name, _ in files]
        assert np.array_equal(splits[split][0].numpy().reshape(-1, 3072), np.concatenate([e["data"] for e in entries]))
        assert splits[split][1].tolist() == [label for e in entries for label in e["labels"]]
    assert dm.class_names == CLASSES


# Images: every mode Pillow opens, reduced to the 8-bit picture it shows.
REFERENCE = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
REFERENCE_RGB = Image.fromarray(REFERENCE)
REFERENCE_L = REFERENCE_RGB.convert("L")
GRAY = np.asarray(REFERENCE_L)


def sixteen_bit(mode: str) -> Image.Image:
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]
    return Image.frombytes(mode, REFERENCE_L.size, (GRAY.astype(np.int64) * 257).astype(dtype).tobytes())


def half_transparent(mode: str) -> Image.Image:
    image = REFERENCE_RGB.convert(mode)
    alpha = np.full(GRAY.shape, 255, np.uint8)
    alpha[:, :4] = 0
    image.putalpha(Image.fromarray(alpha))
    return image


def palette_with_transparency() -> tuple[Image.Image, np.ndarray]:
    image = REFERENCE_RGB.quantize(16)
    image.info["transparency"] = 3
    shown = np.asarray(image.convert("RGB")).copy()
    shown[np.asarray(image) == 3] = 255
    return image, shown


def over_white(rgb_values: np.ndarray) -> np.ndarray:
    shown = rgb_values.copy()
    shown[:, :4] = 255
    return shown


def as_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


MODES = {
    "RGB": lambda: (REFERENCE_RGB, REFERENCE),
    "L": lambda: (REFERENCE_L, as_rgb(GRAY)),
    "I;16": lambda: (sixteen_bit("I;16"), as_rgb(GRAY)),
    "I;16B": lambda: (sixteen_bit("I;16B"), as_rgb(GRAY)),
    "I": lambda: (sixteen_bit("I"), as_rgb(GRAY)),
    "LA": lambda: (half_transparent("L"), over_white(as_rgb(GRAY))),
    "RGBA": lambda: (half_transparent("RGB"), over_white(REFERENCE)),
    "P with transparency": palette_with_transparency,
    "CMYK": lambda: (REFERENCE_RGB.convert("CMYK"), REFERENCE),
    "1": lambda: (REFERENCE_L.convert("1"), as_rgb(np.asarray(REFERENCE_L.convert("1").convert("L")))),
}


@pytest.mark.parametrize("mode", MODES)
def test_every_image_mode_reaches_the_net_as_the_8_bit_picture_it_shows(mode):
    image, shown = MODES[mode]()
    assert np.abs(rgb(image).astype(int) - shown).max() <= 1


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_photo_is_read_upright_as_its_exif_orientation_shows_it(tmp_path, suffix):
    exif = Image.Exif()
    exif[0x0112] = 3  # Orientation: stored upside down
    path = tmp_path / f"photo{suffix}"
    REFERENCE_RGB.rotate(180).save(path, exif=exif, quality=100, subsampling=0)
    assert np.abs(read_image(path, 3, 8).permute(1, 2, 0).numpy().astype(int) - REFERENCE).mean() < 10
    assert np.abs(read_image(path, 1, 8)[0].numpy().astype(int) - GRAY).mean() < 10


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16_bit_gray_is_scaled_for_the_characters_too(mode):
    assert np.abs(grayscale(sixteen_bit(mode)).astype(int) - GRAY).max() <= 1


@pytest.mark.parametrize("values", [np.full((4, 4), 0.5, np.float32), np.full((4, 4), 70000, np.int32)])
def test_pixels_of_no_known_range_are_refused_by_predict(tmp_path, values):
    path = tmp_path / "image.tif"
    Image.fromarray(values).save(path)
    with pytest.raises(UserError, match=rf"^{tmp_path}/image.tif is not an image that can be read \(its pixels "):
        read_image(path, 3, 32)


@pytest.mark.parametrize("channels", [1, 3])
def test_reading_a_grayscale_or_palette_image_warns_nothing(tmp_path, channels):
    images = [REFERENCE_L, palette_with_transparency()[0], REFERENCE_RGB.quantize(16)]
    images[2].info["transparency"] = bytes(range(16))  # transparency in bytes: Pillow warns on convert("RGB")
    for i, image in enumerate(images):
        image.save(tmp_path / f"{i}.png")
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        for i in range(len(images)):
            read_image(tmp_path / f"{i}.png", channels, 32)
    assert [str(w.message) for w in recorded] == []


def top_classes(output: str, path: Path) -> dict[str, float]:
    (line,) = [line for line in output.splitlines() if line.startswith(f"{path}: ")]
    return {name: float(p) for name, p in re.findall(r"(\w+) ([\d.]+)", line.split(": ", 1)[1])}


def test_a_16_bit_png_predicts_as_its_8_bit_png(trained_run, cifar_slice, tmp_path, user_warnings):  # noqa: F811
    with open(cifar_slice / CIFAR10.base_folder / "test_batch", "rb") as f:  # the slice is trusted here
        image = pickle.load(f, encoding="latin1")["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    gray = Image.fromarray(image).convert("L")
    gray.save(tmp_path / "8bit.png")
    Image.fromarray(np.asarray(gray).astype(np.uint16) * 257).save(tmp_path / "16bit.png")
    assert Image.open(tmp_path / "16bit.png").mode == "I;16"

    result = run_cli(
        "lit_cifar.predict",
        f"ckpt_path={trained_run}",
        f"images=[{tmp_path / '8bit.png'},{tmp_path / '16bit.png'}]",
        "top_k=10",
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    eight, sixteen = (
        top_classes(result.stdout, tmp_path / "8bit.png"),
        top_classes(result.stdout, tmp_path / "16bit.png"),
    )
    assert list(eight) == list(sixteen)
    assert max(abs(eight[name] - sixteen[name]) for name in eight) < 1e-2
    shown = [str(w.message) for w in user_warnings if "found in sys.modules" not in str(w.message)]  # runpy's:
    assert shown == []  # this test imported lit_cifar.predict before running it
