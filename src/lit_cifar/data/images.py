"""Pixels as the models see them, shared by the datamodules and `predict` (numpy and Pillow only, so
`predict` starts without Lightning)."""

import numpy as np
from PIL import Image


def grayscale(image: Image.Image) -> np.ndarray:
    """The image as 8-bit gray. 16-bit pixels are scaled onto 0-255, not clipped. Transparent pixels are
    black, the background here (glyphs are bright on black), and a glyph drawn only in the alpha channel
    over one colour throughout is the alpha channel itself."""
    if image.mode == "F":
        raise ValueError("its pixels are 32-bit floats; save it with 8- or 16-bit pixels")
    if image.mode.startswith("I"):  # I;16 (16-bit PNG), I (32-bit)
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"its pixels span {values.min()}..{values.max()}, beyond 16 bits")
        return ((values + 128) // 257).astype(np.uint8)
    if image.has_transparency_data:
        gray, alpha = np.moveaxis(np.asarray(image.convert("LA")), -1, 0)
        if gray.min() == gray.max():
            return alpha.copy()
        return ((gray.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return np.asarray(image.convert("L"))
