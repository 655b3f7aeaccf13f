"""Pixels as the models see them, shared by the datamodules and `predict` (numpy and Pillow only, so
`predict` starts without Lightning): whatever the file's mode, the 8-bit picture a viewer shows of it.

A photo is turned upright as its EXIF orientation says. Pillow's own conversions clip 16-bit gray to 255 (a
white image), so those pixels are scaled here. Pillow opens 16-bit files as `I;16…` or as `I` (32-bit
integers: 16-bit PGM, some TIFF), so `I` is read as 16-bit too and refused beyond that range: the scale of
its values is not in the file. Float pixels (`F`) are refused for the same reason (0-1, 0-255 and 0-65535
are all in use). The arrays returned are writable: torch warns on one that is not."""

import numpy as np
from PIL import Image, ImageOps


def as_shown(image: Image.Image) -> Image.Image:
    """The image upright, with 8-bit channels: 16-bit gray scaled onto 0-255, not clipped."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "F":
        raise ValueError("its pixels are 32-bit floats, whose range the file does not state")
    if not image.mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N (16-bit) and I (32-bit)
        return image
    values = np.asarray(image).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(f"its pixels span {values.min()}..{values.max()}, beyond 16 bits")
    return Image.fromarray(((values + 128) // 257).astype(np.uint8))


def grayscale(image: Image.Image) -> np.ndarray:
    """The image as 8-bit gray. Transparent pixels are black, the background here (glyphs are bright on black),
    and a glyph drawn only in the alpha channel over one colour throughout is the alpha channel itself."""
    image = as_shown(image)
    if image.has_transparency_data:
        gray, alpha = np.moveaxis(np.asarray(image.convert("LA")), -1, 0)
        if gray.min() == gray.max():
            return alpha.copy()
        return ((gray.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return np.array(image.convert("L"))


def rgb(image: Image.Image) -> np.ndarray:
    """The image as 8-bit RGB, height×width×3. Transparent pixels show white, as a viewer shows them on a
    page; the colour a file keeps under them is often arbitrary."""
    image = as_shown(image)
    if image.has_transparency_data:
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.array(image.convert("RGB"))
