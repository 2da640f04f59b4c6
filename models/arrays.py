"""Arrays in JSON documents: base64 of their little-endian bytes."""

from __future__ import annotations

import base64

import numpy as np


def encode_array(array: np.ndarray, dtype: str) -> str:
    """``array`` as ``dtype`` (e.g. ``"<f8"``), base64: exact, and a third of a JSON list's size."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode()


def decode_array(text: str, dtype: str) -> np.ndarray:
    """The flat array :func:`encode_array` wrote (a writable copy)."""
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()
