"""Pickles read as data: numpy arrays, dtypes and scalars inside plain Python values (dicts, lists, tuples,
strings, bytes, numbers), and nothing else, so that no file decides which code runs.

A pickle names the functions that rebuild its objects, and the full unpickler imports and calls whatever it
names. This one admits only the names below, which is all the CIFAR-10 python format needs however it was
written: by Python 2's cPickle (the official files: numpy under `numpy.core`, text and bytes as byte strings,
read as latin-1), or by Python 3 at protocol 2 (bytes as `_codecs.encode(text, "latin1")`), 3 or 4, or 5
(arrays by `_frombuffer`); under numpy 1 (`numpy.core`) or numpy 2 (`numpy._core`)."""

import pickle
from typing import BinaryIO

import numpy as np


class Refused(pickle.UnpicklingError):
    """The pickle names code other than what rebuilds its data."""

    def __init__(self, named: str) -> None:
        super().__init__(f"a pickle of {named}")
        self.named = named


def latin1_bytes(text: str, encoding: str) -> bytes:
    """`_codecs.encode` as Python 3 calls it to store bytes at protocol 2, and only that call."""
    if not isinstance(text, str) or encoding != "latin1":
        raise Refused(f"_codecs.encode to {encoding!r}")
    return text.encode("latin1")


# numpy's own rebuilders, taken from what numpy pickles, wherever this numpy version keeps them.
REBUILD_ARRAY = np.zeros(1).__reduce__()[0]  # _reconstruct, followed by ndarray.__setstate__
REBUILD_SCALAR = np.float64(0).__reduce__()[0]  # scalar(dtype, bytes)
ARRAY_FROM_BUFFER = np.zeros(1).__reduce_ex__(5)[0]  # _frombuffer(bytes, dtype, shape, order), protocol 5

ADMITTED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): latin1_bytes,
    **{
        (f"{core}.{module}", name): rebuilder
        for core in ("numpy.core", "numpy._core")  # numpy 1's name and numpy 2's: files of both exist
        for module, name, rebuilder in (
            ("multiarray", "_reconstruct", REBUILD_ARRAY),
            ("multiarray", "scalar", REBUILD_SCALAR),
            ("numeric", "_frombuffer", ARRAY_FROM_BUFFER),
        )
    },
}


class DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return ADMITTED[module, name]
        except KeyError:
            raise Refused(f"{module}.{name}") from None


def load(file: BinaryIO) -> object:
    """The pickled value, its byte strings from Python 2 read as latin-1 (as numpy expects of array data)."""
    return DataUnpickler(file, encoding="latin1").load()
