"""Middlebury `.flo` optical-flow files: reading and writing.

Layout (little-endian): float32 magic 202021.25 (the bytes "PIEH"), int32 width, int32 height,
then width·height pairs of float32 (u, v), row by row. u is the horizontal (column) and v the
vertical (row) displacement in pixels.
"""
import os
from typing import Union

import numpy as np

FLO_MAGIC = 202021.25
_HEADER = np.dtype([("magic", "<f4"), ("width", "<i4"), ("height", "<i4")])
# Real flow fields are a few thousand pixels wide at most; a larger header means a corrupt file.
_MAX_SIDE = 100_000

PathLike = Union[str, os.PathLike]


def read_flo(path: PathLike) -> np.ndarray:
    """Read a `.flo` file into a float32 array of shape (height, width, 2) holding (u, v)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"flow file '{path}' does not exist")
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < _HEADER.itemsize:
        raise ValueError(f"flow file '{path}' is truncated: {len(data)} bytes, "
                         f"expected at least a {_HEADER.itemsize}-byte header")
    header = np.frombuffer(data, dtype=_HEADER, count=1)[0]
    if header["magic"] != np.float32(FLO_MAGIC):
        raise ValueError(f"flow file '{path}' has magic {float(header['magic'])!r} (bytes {data[:4]!r}); "
                         f"expected {FLO_MAGIC} (b'PIEH') — not a Middlebury .flo file")
    width, height = int(header["width"]), int(header["height"])
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise ValueError(f"flow file '{path}' declares an implausible size {width}x{height}")
    expected = _HEADER.itemsize + width * height * 2 * 4
    if len(data) != expected:
        raise ValueError(f"flow file '{path}' has {len(data)} bytes; a {width}x{height} flow needs "
                         f"{expected} ({'truncated' if len(data) < expected else 'trailing data'})")
    flow = np.frombuffer(data, dtype="<f4", offset=_HEADER.itemsize)
    return flow.reshape(height, width, 2).astype(np.float32)


def write_flo(path: PathLike, flow: np.ndarray) -> None:
    """Write a (height, width, 2) array of (u, v) as a `.flo` file (stored as float32)."""
    path = os.fspath(path)
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] == 0 or flow.shape[1] == 0:
        raise ValueError(f"cannot write '{path}': flow must have shape (height, width, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    header = np.array([(FLO_MAGIC, width, height)], dtype=_HEADER)
    with open(path, "wb") as handle:
        handle.write(header.tobytes())
        handle.write(np.ascontiguousarray(flow, dtype="<f4").tobytes())
