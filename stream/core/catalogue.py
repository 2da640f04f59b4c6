"""The catalogue as the worker keeps it: each item's embedding and categories.

Table value: 4-byte length, JSON header (categories), float32 vector.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.text import clean_text
from stream.contract.records import InvalidEvent, Item, Message, parse_item

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


def usable_vector(vector: np.ndarray) -> bool:
    """Whether an encoded vector can enter a user's or an item's state: finite and not zero."""
    return bool(np.isfinite(vector).all() and np.abs(vector).sum() > 0)


class Catalogue(Protocol):
    """Items by id: a dict in one process, the ``item-vectors`` global table in a worker."""

    def get(self, item_id: str, /) -> CatalogueItem | None: ...


def catalogue_text(message: Message) -> tuple[Item, str]:
    """An ``items`` message as the encoder reads it: the item and its cleaned text, or
    InvalidEvent (bad record, key not the item id, nothing left after cleaning)."""
    item = parse_item(message.value)
    if message.key is not None and message.key.decode("utf-8", "replace") != item.item_id:
        raise InvalidEvent(f"message key {message.key!r} is not the item_id {item.item_id!r}")
    text = clean_text(item.text())
    if not text:
        raise InvalidEvent("item text is empty after cleaning")
    return item, text
