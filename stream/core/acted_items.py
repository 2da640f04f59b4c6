"""The items a user acted on, for recommendations never to serve them back: a scalable Bloom
filter (Almeida et al., 2007) over the items' 4-byte digests, in the user's row.

A plain list of the last 200 items forgot a heavy user's older items, and those came back as
recommendations. A filter remembers every item in bounded space per item: stage i holds
``FIRST_CAPACITY * 2^i`` items at a false-positive rate of ``FALSE_POSITIVE / 2^(i+2)``, so
the whole filter stays under ``FALSE_POSITIVE`` (1%: one item in a hundred that was never acted
on may be skipped) however many stages it grows: the design sums to half of it, as double
hashing runs a little above the textbook rate (measured: 0.5%). A stage is allocated whole, so
a user costs 2 to 4.4 bytes per item: ~330 bytes for 100 items, ~4 KB for 1,000. Positions come from one 64-bit mix of the digest (double hashing), so a
row read back answers exactly as it was written.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np

ITEM_DIGEST_BYTES = 4  # a collision only hides one item from one user's recommendations
FIRST_CAPACITY = 64
FALSE_POSITIVE = 0.01
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@lru_cache(maxsize=65_536)
def item_digest(item_id: str) -> int:
    """An item id's 4-byte digest, remembered: the same items come back event after event."""
    return int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=ITEM_DIGEST_BYTES).digest(), "little")


@cache
def stage_shape(stage: int) -> tuple[int, int, int]:
    """(capacity, bits, hashes) of stage ``stage``: bits a multiple of 8."""
    capacity = FIRST_CAPACITY << stage
    rate = FALSE_POSITIVE / 2 ** (stage + 2)
    bits = math.ceil(capacity * math.log(1 / rate) / math.log(2) ** 2 / 8) * 8
    return capacity, bits, math.ceil(math.log2(1 / rate))


def _mix(digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """splitmix64 of each digest, split into the two hashes of double hashing (the second odd)."""
    with np.errstate(over="ignore"):
        z = digests.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = (z ^ (z >> np.uint64(31))) & _MASK64
    return z & np.uint64(0xFFFFFFFF), (z >> np.uint64(32)) | np.uint64(1)


def _positions(digests: np.ndarray, stage: int) -> np.ndarray:
    """[len(digests), hashes] bit positions of the digests in stage ``stage``."""
    _, bits, hashes = stage_shape(stage)
    h1, h2 = _mix(digests)
    j = np.arange(hashes, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return ((h1[:, None] + j[None, :] * h2[:, None]) % np.uint64(bits)).astype(np.int64)


@dataclass(eq=False)
class ActedItems:
    """The filter: per stage, its bits and how many items it took."""

    stages: list[np.ndarray] = field(default_factory=list)  # uint8 bit arrays
    counts: list[int] = field(default_factory=list)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActedItems):
            return NotImplemented
        return self.counts == other.counts and all(np.array_equal(a, b) for a, b in zip(self.stages, other.stages))

    @classmethod
    def of(cls, digests: Iterable[int]) -> ActedItems:
        acted = cls()
        for digest in digests:
            acted.add(digest)
        return acted

    @property
    def count(self) -> int:
        """Items added (an item seen before, or taken for one, is not added again)."""
        return sum(self.counts)

    def add(self, digest: int) -> None:
        if digest in self:
            return
        if not self.stages or self.counts[-1] >= stage_shape(len(self.stages) - 1)[0]:
            self.stages.append(np.zeros(stage_shape(len(self.stages))[1] // 8, dtype=np.uint8))
            self.counts.append(0)
        positions = _positions(np.array([digest], dtype=np.uint64), len(self.stages) - 1)[0]
        np.bitwise_or.at(self.stages[-1], positions >> 3, (1 << (positions & 7)).astype(np.uint8))
        self.counts[-1] += 1

    def contains_many(self, digests: np.ndarray) -> np.ndarray:
        """Whether each digest may have been added (False: certainly not)."""
        found = np.zeros(len(digests), dtype=bool)
        for stage, bits in enumerate(self.stages):
            positions = _positions(digests, stage)
            found |= ((bits[positions >> 3] >> (positions & 7)) & 1).astype(bool).all(axis=1)
        return found

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, int) and bool(self.contains_many(np.array([digest], dtype=np.uint64))[0])

    def to_bytes(self) -> bytes:
        """The stages' counts (uint32), then their bits; the row stores the number of stages."""
        return np.array(self.counts, dtype="<u4").tobytes() + b"".join(bits.tobytes() for bits in self.stages)

    @classmethod
    def from_bytes(cls, raw: bytes, n_stages: int) -> tuple[ActedItems, int]:
        """A filter of ``n_stages`` read from the start of ``raw``, and the bytes it took."""
        counts = np.frombuffer(raw, dtype="<u4", count=n_stages).tolist()
        pos, stages = 4 * n_stages, []
        for stage in range(n_stages):
            size = stage_shape(stage)[1] // 8
            if pos + size > len(raw):
                raise ValueError("row ends inside its items filter")
            stages.append(np.frombuffer(raw, dtype=np.uint8, count=size, offset=pos).copy())
            pos += size
        return cls(stages, counts), pos


@dataclass(frozen=True)
class ActedOn(Container[str]):
    """Item ids tested against a user's filter, for the recommender."""

    acted: ActedItems

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and item_digest(item_id) in self.acted

    def among(self, item_ids: Sequence[str]) -> np.ndarray:
        """Whether each of ``item_ids`` was acted on (up to the filter's false positives)."""
        digests = np.fromiter((item_digest(i) for i in item_ids), dtype=np.uint64, count=len(item_ids))
        return self.acted.contains_many(digests)
