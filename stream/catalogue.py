"""A catalogue item as the worker keeps it: its embedding and its categories.

Table value: 4-byte length, JSON header (categories), float32 vector.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

_HEADER = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    vector: np.ndarray  # float32 [dim], unit norm
    categories: tuple[str, ...]

    def to_bytes(self) -> bytes:
        head = json.dumps({"c": list(self.categories)}, separators=(",", ":")).encode()
        return _HEADER.pack(len(head)) + head + self.vector.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CatalogueItem:
        (length,) = _HEADER.unpack_from(raw)
        head = json.loads(raw[_HEADER.size : _HEADER.size + length])
        vector = np.frombuffer(raw[_HEADER.size + length :], dtype="<f4")
        return cls(vector, tuple(head["c"]))
