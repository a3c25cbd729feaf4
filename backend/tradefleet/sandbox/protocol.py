"""The wire format between the platform and a strategy runner: length-prefixed frames of a JSON header
followed by raw numpy array buffers.

A frame is ``u32 big-endian header length | header (UTF-8 JSON object) | array bytes...``. The header's
``"arrays"`` entry lists ``[name, dtype, length]`` for every one-dimensional array that follows, in order,
each as ``length * itemsize`` bytes in C order. Only the dtypes of :data:`DTYPES` travel: nothing is
pickled, no object arrays, so a reader never executes what the other side sent. Both sides use this
module (the runner imports it inside the sandbox: standard library and numpy only).

A reader is given caps (:class:`Limits`) and refuses a frame that exceeds them before reading its body,
so a runner that writes gigabytes is stopped at its first header.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

DTYPES = {"<f8": np.dtype("<f8"), "<i8": np.dtype("<i8"), "|u1": np.dtype("|u1")}
"""The array dtypes a frame may carry: float64 (prices, volumes), int64 (epoch ms), uint8 (signal codes)."""

_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame that is malformed, too large, or cut short (the other side died or misbehaved)."""


@dataclass(frozen=True)
class Limits:
    """Caps on one frame: ``header_bytes`` for the JSON header, ``array_bytes`` for all arrays together."""

    header_bytes: int = 1 << 20
    array_bytes: int = 64 << 20


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """One frame: ``header`` (JSON-serialisable, NaN refused) and the named 1-D ``arrays``."""
    arrays = arrays or {}
    specs, blobs = [], []
    for name, array in arrays.items():
        a = np.ascontiguousarray(array)
        key = a.dtype.str
        if key not in DTYPES or a.ndim != 1:
            raise ProtocolError(f"array {name!r}: dtype {key} with {a.ndim} dimensions cannot be sent")
        specs.append([name, key, int(a.shape[0])])
        blobs.append(a.tobytes())
    body = json.dumps({**header, "arrays": specs}, allow_nan=False, separators=(",", ":")).encode()
    return b"".join([_LEN.pack(len(body)), body, *blobs])


def _read_exact(fd: int, n: int, deadline_read) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = deadline_read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise ProtocolError("the other side closed the channel mid-frame" if got or chunks else "channel closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limits: Limits = Limits(), read=os.read) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read one frame from ``fd``; returns ``(header, arrays)``. ``read(fd, n)`` may be replaced by one that
    enforces a deadline. Raises :class:`ProtocolError` for a closed channel, a cap exceeded, a header that is
    not a JSON object, an unknown dtype or a length that does not add up."""
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size, read))
    if size > limits.header_bytes:
        raise ProtocolError(f"header of {size} bytes exceeds the cap of {limits.header_bytes}")
    try:
        header = json.loads(_read_exact(fd, size, read))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    specs = header.pop("arrays", [])
    if not isinstance(specs, list):
        raise ProtocolError("arrays is not a list")
    plan, total = [], 0
    for spec in specs:
        if (not isinstance(spec, list) or len(spec) != 3 or not isinstance(spec[0], str)
                or spec[1] not in DTYPES or not isinstance(spec[2], int) or isinstance(spec[2], bool)
                or spec[2] < 0):
            raise ProtocolError(f"bad array spec {str(spec)[:80]}")
        nbytes = spec[2] * DTYPES[spec[1]].itemsize
        total += nbytes
        if total > limits.array_bytes:
            raise ProtocolError(f"arrays exceed the cap of {limits.array_bytes} bytes")
        plan.append((spec[0], DTYPES[spec[1]], nbytes))
    arrays = {}
    for name, dtype, nbytes in plan:
        arrays[name] = np.frombuffer(_read_exact(fd, nbytes, read), dtype=dtype) if nbytes else np.empty(0, dtype)
    return header, arrays


def write_frame(fd: int, frame: bytes) -> None:
    """Write all of ``frame`` to ``fd`` (a blocking pipe)."""
    view = memoryview(frame)
    while view:
        written = os.write(fd, view)
        view = view[written:]
