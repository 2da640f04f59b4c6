"""One user's state: a time-decayed embedding, counters, segment, and what was already applied.

The embedding is the direction of a decayed weighted sum of the vectors of the user's events
(review text embeddings and the embeddings of items they acted on). Decay runs in event time:
an event at time t weighs 2^(-(T - t) / half_life) at reference time T, the latest event time
seen. Folding an event into the sum is exact whatever the arrival order, so late events and
replays in another interleaving give the same vector.

Exactly-once application, per user: the highest offset applied from each source partition
(a redelivery, or a replay of the same topic, is recognised without bound) and the digests of
the event ids applied within the dedup horizon (the same event published again at another
offset). An event older than the horizon, counted back from the user's latest event, could be
a copy whose digest was pruned: it is not applied but dead-lettered with that reason.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_HEADER = struct.Struct("<I")


def decay_factor(age_s: float, half_life_s: float) -> float:
    """Weight left after ``age_s`` seconds of event time."""
    return float(2.0 ** (-age_s / half_life_s))


def id_digest(event_id: str) -> int:
    """A stable 64-bit digest of an event or item id (collisions within one user: ~1e-13)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


_SEEN = np.dtype([("digest", "<u8"), ("ts", "<f8")])


@dataclass(frozen=True)
class _ItemDigests(Container[str]):
    digests: frozenset[int]

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and id_digest(item_id) in self.digests


@dataclass
class PendingBehavior:
    """A behaviour on an item the catalogue does not know yet, held until it does."""

    event_id: str
    item_id: str
    action: str
    ts: float
    source: tuple[str, int, int]


@dataclass
class UserState:
    user_id: str
    vector_sum: np.ndarray | None = None  # float32 [dim], decayed at ref_ts
    weight: float = 0.0  # decayed total weight at ref_ts
    ref_ts: float = 0.0
    reviews: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    segment: int | None = None
    distance: float | None = None
    model_version: int | None = None
    offsets: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> offset
    seen: dict[int, float] = field(default_factory=dict)  # event-id digest -> event time
    items: list[int] = field(default_factory=list)  # digests of items acted on, newest last
    pending: list[PendingBehavior] = field(default_factory=list)

    @property
    def vector(self) -> np.ndarray | None:
        """The user's unit embedding, or None before any event with a vector."""
        if self.vector_sum is None:
            return None
        norm = float(np.linalg.norm(self.vector_sum))
        if norm == 0.0 or not np.isfinite(norm):
            return None
        return (self.vector_sum / norm).astype(np.float32)

    @property
    def events(self) -> int:
        return self.reviews + sum(self.actions.values())

    def already_applied(self, event_id: str, topic: str, partition: int, offset: int) -> bool:
        if offset <= self.offsets.get(f"{topic}:{partition}", -1):
            return True
        return id_digest(event_id) in self.seen

    def beyond_horizon(self, ts: float, horizon_s: float) -> bool:
        """True when an event is too old, relative to the user's latest, to deduplicate."""
        return self.vector_sum is not None and ts < self.ref_ts - horizon_s

    def mark_applied(
        self, event_id: str, ts: float, topic: str, partition: int, offset: int, horizon_s: float
    ) -> None:
        key = f"{topic}:{partition}"
        self.offsets[key] = max(offset, self.offsets.get(key, -1))
        self.seen[id_digest(event_id)] = ts
        oldest = max(self.ref_ts, ts) - horizon_s
        # O(1) check on the earliest-inserted digest (events mostly arrive in time order); a
        # late-arriving old digest may outlive the horizon a little, which only errs on the safe side.
        if next(iter(self.seen.values())) < oldest:
            self.seen = {d: t for d, t in self.seen.items() if t >= oldest}

    def add_vector(self, vector: np.ndarray, weight: float, ts: float, half_life_s: float) -> None:
        """Fold one event's unit vector into the decayed sum (order-independent)."""
        contribution = np.asarray(vector, dtype=np.float32) * np.float32(weight)
        if self.vector_sum is None:
            self.vector_sum = contribution.copy()
            self.weight = weight
            self.ref_ts = ts
        elif ts >= self.ref_ts:
            factor = decay_factor(ts - self.ref_ts, half_life_s)
            self.vector_sum = self.vector_sum * np.float32(factor) + contribution
            self.weight = self.weight * factor + weight
            self.ref_ts = ts
        else:
            factor = decay_factor(self.ref_ts - ts, half_life_s)
            self.vector_sum = self.vector_sum + contribution * np.float32(factor)
            self.weight += weight * factor

    def count_action(self, action: str) -> None:
        self.actions[action] = self.actions.get(action, 0) + 1

    def touch_item(self, item_id: str, keep: int) -> None:
        """Remember an item the user acted on (the newest ``keep``), not to recommend it back."""
        digest = id_digest(item_id)
        if digest in self.items:
            self.items.remove(digest)
        self.items.append(digest)
        del self.items[:-keep]

    def knows_item(self, item_id: str) -> bool:
        return id_digest(item_id) in self.items

    @property
    def acted_on(self) -> Container[str]:
        """The items this user acted on, for ``in`` tests (the row keeps only their digests)."""
        return _ItemDigests(frozenset(self.items))

    def public_view(self) -> dict[str, Any]:
        """What GET /users/{id} shows."""
        return {
            "user_id": self.user_id,
            "segment": self.segment,
            "distance": self.distance,
            "model_version": self.model_version,
            "reviews": self.reviews,
            "actions": dict(self.actions),
            "events": self.events,
            "pending_unknown_items": len(self.pending),
            "last_event_ts": self.ref_ts or None,
            "has_vector": self.vector_sum is not None,
        }

    # Compact binary form for the table: 4-byte header length, JSON header, float32 vector.
    def to_bytes(self) -> bytes:
        header = {
            "u": self.user_id,
            "w": self.weight,
            "t": self.ref_ts,
            "r": self.reviews,
            "a": self.actions,
            "s": self.segment,
            "d": self.distance,
            "m": self.model_version,
            "o": self.offsets,
            "i": len(self.seen),
            "j": len(self.items),
            "p": [[p.event_id, p.item_id, p.action, p.ts, list(p.source)] for p in self.pending],
            "n": 0 if self.vector_sum is None else int(self.vector_sum.shape[0]),
        }
        head = json.dumps(header, separators=(",", ":")).encode()
        vector = b"" if self.vector_sum is None else self.vector_sum.astype("<f4").tobytes()
        seen = np.fromiter(self.seen.items(), dtype=_SEEN, count=len(self.seen)).tobytes()
        items = np.asarray(self.items, dtype="<u8").tobytes()
        return _HEADER.pack(len(head)) + head + vector + seen + items

    @classmethod
    def from_bytes(cls, raw: bytes) -> UserState:
        (length,) = _HEADER.unpack_from(raw)
        header = json.loads(raw[_HEADER.size : _HEADER.size + length])
        start = _HEADER.size + length
        end = start + 4 * header["n"]
        vector = np.frombuffer(raw[start:end], dtype="<f4").copy() if header["n"] else None
        seen = np.frombuffer(raw[end:], dtype=_SEEN, count=header["i"])
        items = np.frombuffer(raw[end + seen.nbytes :], dtype="<u8", count=header.get("j", 0))
        return cls(
            user_id=header["u"],
            vector_sum=vector,
            weight=header["w"],
            ref_ts=header["t"],
            reviews=header["r"],
            actions=header["a"],
            segment=header["s"],
            distance=header["d"],
            model_version=header["m"],
            offsets=header["o"],
            seen=dict(zip(seen["digest"].tolist(), seen["ts"].tolist())),
            items=items.tolist(),
            pending=[
                PendingBehavior(e, i, a, t, (s[0], s[1], s[2])) for e, i, a, t, s in header["p"]
            ],
        )
