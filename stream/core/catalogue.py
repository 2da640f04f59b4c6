"""The catalogue as the worker keeps it: each item's embedding, categories and title.

Table value: 4-byte length, JSON header ("c": categories, "t": title), float32 vector. Rows
written before titles were kept have no "t" and read with an empty title.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.text import clean_text
from stream.contract.records import InvalidEvent, Item, Message, parse_item, shown

log = logging.getLogger("segstream")

_HEADER = struct.Struct("<I")
# Items kept decoded: the ones behaviours hit again and again are not decoded per event; at
# ~1.7 KB each this is ~35 MB at most beside the rows.
DECODED_MAX = 20_000


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    vector: np.ndarray  # float32 [dim], unit norm
    categories: tuple[str, ...]
    title: str = ""  # for people (portraits, recommendations); "" when unknown

    def to_bytes(self) -> bytes:
        head = json.dumps({"c": list(self.categories), "t": self.title}, separators=(",", ":")).encode()
        return _HEADER.pack(len(head)) + head + self.vector.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CatalogueItem:
        (length,) = _HEADER.unpack_from(raw)
        head = json.loads(raw[_HEADER.size : _HEADER.size + length])
        vector = np.frombuffer(raw[_HEADER.size + length :], dtype="<f4")
        return cls(vector, tuple(head["c"]), str(head.get("t", "")))


def usable_vector(vector: np.ndarray) -> bool:
    """Whether an encoded vector can enter a user's or an item's state: finite and not zero."""
    return bool(np.isfinite(vector).all() and np.abs(vector).sum() > 0)


class CatalogueRows:
    """Items by id as encoded rows (decoded when asked for): a worker's copy of the item-vectors topic."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.rows: dict[bytes, bytes] = {}
        self.decoded: dict[bytes, CatalogueItem] = {}  # the latest DECODED_MAX items asked for
        self.caught_up = False  # read to the topic's end as it was at start

    def get(self, item_id: str) -> CatalogueItem | None:
        key = item_id.encode()
        item = self.decoded.get(key)
        if item is not None:
            return item
        raw = self.rows.get(key)
        if raw is None:
            return None
        if len(self.decoded) >= DECODED_MAX:
            del self.decoded[next(iter(self.decoded))]
        item = self.decoded[key] = CatalogueItem.from_bytes(raw)
        return item

    def knows(self, item_id: str) -> bool:
        return item_id.encode() in self.rows

    def put(self, item_id: str, item: CatalogueItem) -> None:
        self.put_row(item_id.encode(), item.to_bytes())

    def put_row(self, key: bytes | None, raw: bytes | None) -> None:
        """A record of the topic: a row, a tombstone (None) or a record no worker wrote (skipped)."""
        if key is None:
            log.warning("skipping a record without a key on the item-vectors topic")
            return
        self.decoded.pop(key, None)
        if raw is None:
            self.rows.pop(key, None)
            return
        try:
            if CatalogueItem.from_bytes(raw).vector.shape != (self.dim,):
                raise ValueError(f"not a {self.dim}-dimensional vector")
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            log.warning("skipping an unreadable record on the item-vectors topic (key %r): %s", key[:80], shown(exc))
            return
        self.rows[key] = raw

    def __len__(self) -> int:
        return len(self.rows)


class Catalogue(Protocol):
    """Items by id: a dict in one process, :class:`CatalogueRows` in a worker."""

    def get(self, item_id: str, /) -> CatalogueItem | None: ...


def titled(catalogue: Catalogue, item_ids: Iterable[str]) -> list[dict[str, str | None]]:
    """Item ids with their titles, for people (None: not in the catalogue, or kept no title)."""
    rows = ((item_id, catalogue.get(item_id)) for item_id in item_ids)
    return [{"item_id": item_id, "title": (row.title or None) if row else None} for item_id, row in rows]


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
