"""One user's state: a time-decayed embedding, counters, segment, and what was already applied.

The embedding is the direction of a decayed weighted sum of the vectors of the user's events
(review text embeddings and the embeddings of items they acted on). Decay runs in event time:
an event at time t weighs 2^(-(T - t) / half_life) at reference time T, the latest event time
seen. Folding an event into the sum is exact whatever the arrival order, so late events and
replays in another interleaving give the same vector (up to the row's float16 rounding, below).

Exactly-once application, per user: the highest offset applied from each source partition
(a redelivery, or a replay of the same topic, is recognised without bound) and the digests of
the event ids applied (the same event published again at another offset). Live, digests are
kept within the dedup horizon of event time back from the user's latest event, and an event
older than that is dead-lettered (a copy of it could have had its digest pruned). While a
replay runs every digest is kept (up to :data:`REPLAY_SEEN_MAX`): a replay reads partitions at
different speeds, so a user's history arrives months out of order, and a horizon would refuse
it. The row notes the latest event time whose digest it ever dropped (``dropped_until``), and
an event at or before it is refused whatever the mode: what the row kept is exactly what it
can tell apart, so a replay on top of pruned rows stays safe.

The items a user acted on are in a scalable Bloom filter (stream/core/acted_items.py), so
recommendations skip all of them; the last few are also listed, for explanations. The row also
keeps what the user brings to a segment's portrait (models/member_counts.py).

The table row (:meth:`UserState.to_bytes`, format 4) is binary and small: about 0.9 KB plus
9 bytes per digest kept (the events inside the dedup horizon, or a replay's), 4 per listed
recent item and 2 to 4.4 per item in the filter. The vector sum is float16 scaled by its largest component (a float32): one
round trip turns the user's direction by 1 - cosine < 1e-7, 3,000 of them (a row rewritten
after every event) by 2e-5 at most in tests. Offsets, event-id digests, ref_ts, dropped_until
and pending events are exact; a digest's event time is rounded up to the minute (it can only be
kept up to a minute longer). Rows of formats 2 and 3 are read (their item lists fill the filter);
others are refused with a clear error.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import numpy as np

from models.member_counts import MemberCounts
from stream.contract.changes import SegmentChange
from stream.contract.records import Source, iso_ms
from stream.core.acted_items import ActedItems, ActedOn, item_digest

FORMAT = 4  # first byte of a row; formats 3 (no items filter) and 2 (no dropped_until) are read too
FORMAT_3, FORMAT_2 = 3, 2
# Event-id digests a row keeps while a replay runs: 9 bytes each, so a row stays well under the
# 1 MB a Kafka record (the table's changelog) takes by default; past it the oldest go.
REPLAY_SEEN_MAX = 50_000

# format, flags, ref_ts, weight, reviews, segment, distance, model_version, dropped_until,
# vector dim, counts of actions, offsets, pending, seen digests, recent items, items filter stages
_FIXED = struct.Struct("<BBddIidQdHHHHIHB")
_FIXED_3 = struct.Struct("<BBddIidQdHHHHIH")  # format 3: no items filter
_FIXED_2 = struct.Struct("<BBddIidQHHHHIH")  # format 2: no dropped_until either
_FLAGS, _SEGMENT, _PENDING_COUNT = 1, 5, 12  # indices of the fixed fields read alone
_LENGTH = struct.Struct("<H")  # before each string
_COUNT = struct.Struct("<I")  # an action's count
_OFFSET = struct.Struct("<Q")
_PENDING = struct.Struct("<dIQ")  # a pending event's time, source partition and offset
_SCALE = struct.Struct("<f")
_MINUTE = struct.Struct("<q")
_HAS_VECTOR, _HAS_SEGMENT, _HAS_DISTANCE, _HAS_MODEL_VERSION, _HAS_LAST_CHANGE = 1, 2, 4, 8, 16
# the last change published: previous segment, segment (-1: none), model version, distance (NaN: none),
# then reason, mode, source topic ("" : none) and ts as strings, then the source's partition and offset
_CHANGE = struct.Struct("<iiQd")
_CHANGE_SOURCE = struct.Struct("<IQ")
_ESCAPE = 255  # a seen-time step of this many minutes or more is stored in full, as 8 bytes


def decay_factor(age_s: float, half_life_s: float) -> float:
    """Weight left after ``age_s`` seconds of event time."""
    return float(2.0 ** (-age_s / half_life_s))


def id_digest(event_id: str, size: int = 8) -> int:
    """A stable digest of an event or item id; 8 bytes for event ids (a collision would drop
    an event: a chance of ~5e-17 per event for a user holding 1,000 digests)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=size).digest(), "little")


def _text(value: str) -> bytes:
    raw = value.encode()
    return _LENGTH.pack(len(raw)) + raw


class _Reader:
    """Fields of a row in order; reading past the end raises struct.error or ValueError."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

    def take(self, layout: struct.Struct) -> tuple[Any, ...]:
        values = layout.unpack_from(self.raw, self.pos)
        self.pos += layout.size
        return values

    def text(self) -> str:
        (n,) = self.take(_LENGTH)
        self.pos += n
        return self.raw[self.pos - n : self.pos].decode()

    def values(self, code: str, count: int) -> tuple[Any, ...]:
        """``count`` values of one struct type code."""
        return self.take(struct.Struct(f"<{count}{code}"))

    def chunk(self, count: int) -> bytes:
        self.pos += count
        if self.pos > len(self.raw):
            raise ValueError("row ends early")
        return self.raw[self.pos - count : self.pos]

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.raw, dtype=dtype, count=count, offset=self.pos)
        self.pos += values.nbytes
        return values


@dataclass
class PendingBehavior:
    """A behaviour on an item the catalogue does not know yet, held until it does."""

    event_id: str
    item_id: str
    action: str
    ts: float
    source: Source


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
    dropped_until: float = -math.inf  # the latest event time whose digest was dropped from seen
    items: list[int] = field(default_factory=list)  # 4-byte digests of the latest items acted on, newest last
    acted: ActedItems = field(default_factory=ActedItems)  # every item acted on
    member_counts: MemberCounts = field(default_factory=MemberCounts)  # what the user brings to a portrait
    pending: list[PendingBehavior] = field(default_factory=list)
    # The change event published last for this user, kept to send again, byte for byte, when the
    # worker cannot know it was delivered (a redelivered event: stream/core/pipeline.py).
    last_change: SegmentChange | None = None

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
    def event_count(self) -> int:
        return self.reviews + sum(self.actions.values())

    def already_applied(self, event_id: str, source: Source) -> bool:
        if source.offset <= self.offsets.get(f"{source.topic}:{source.partition}", -1):
            return True
        return id_digest(event_id) in self.seen

    def beyond_horizon(self, ts: float, horizon_s: float) -> bool:
        """True when an event is too old, relative to the user's latest, to deduplicate live."""
        return self.vector_sum is not None and ts < self.ref_ts - horizon_s

    def dropped(self, ts: float) -> bool:
        """True when the digest of an event at ``ts`` may have been dropped: a copy of an
        applied event that old could not be told apart."""
        return ts <= self.dropped_until

    def mark_applied(self, event_id: str, ts: float, source: Source, horizon_s: float | None) -> None:
        """Note an applied event's position and digest. ``horizon_s``: keep the digests within
        that much event time of the user's latest event (live); None: keep them all, up to
        :data:`REPLAY_SEEN_MAX` (a replay runs, and its events come in any order)."""
        key = f"{source.topic}:{source.partition}"
        self.offsets[key] = max(source.offset, self.offsets.get(key, -1))
        self.seen[id_digest(event_id)] = ts
        if horizon_s is None:
            if len(self.seen) > REPLAY_SEEN_MAX:
                # an eighth more than needed, so the sort comes once in thousands of events
                self._drop_before(sorted(self.seen.values())[len(self.seen) - REPLAY_SEEN_MAX * 7 // 8])
            return
        oldest = max(self.ref_ts, ts) - horizon_s
        # O(1) check on the earliest-inserted digest (events mostly arrive in time order, and a
        # row read back lists its oldest first); a late-arriving old digest may outlive the
        # horizon a little, which only errs on the safe side.
        if next(iter(self.seen.values())) < oldest:
            self._drop_before(oldest)

    def _drop_before(self, cutoff: float) -> None:
        """Forget the digests of events before ``cutoff``, noting the latest one forgotten."""
        dropped = [t for t in self.seen.values() if t < cutoff]
        if dropped:
            self.dropped_until = max(self.dropped_until, max(dropped))
            self.seen = {d: t for d, t in self.seen.items() if t >= cutoff}

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
        """Remember an item the user acted on: in the filter, not to recommend it back; among
        the newest ``keep`` listed, for explanations."""
        digest = item_digest(item_id)
        self.acted.add(digest)
        if digest in self.items:
            self.items.remove(digest)
        self.items.append(digest)
        del self.items[:-keep]

    @property
    def acted_on(self) -> ActedOn:
        """The items this user acted on, for ``in`` tests (the row keeps only a filter)."""
        return ActedOn(self.acted)

    def public_view(self) -> dict[str, Any]:
        """What GET /users/{id} shows."""
        return {
            "user_id": self.user_id,
            "segment": self.segment,
            "distance": self.distance,
            "model_version": self.model_version,
            "reviews": self.reviews,
            "actions": dict(self.actions),
            "events": self.event_count,
            "pending_unknown_items": len(self.pending),
            "last_event_ts": iso_ms(self.ref_ts or None),
            "has_vector": self.vector_sum is not None,
        }

    def to_bytes(self) -> bytes:
        """The table row: the fixed fields, then user id, actions, offsets, pending events,
        the float16 vector with its float32 scale, item digests, seen digests oldest first, and
        their event times in whole minutes (rounded up): the earliest, then one byte a step to
        the next (a step of 255 minutes or more is 255 there and 8 bytes after)."""
        flags = (
            (self.vector_sum is not None) * _HAS_VECTOR
            | (self.segment is not None) * _HAS_SEGMENT
            | (self.distance is not None) * _HAS_DISTANCE
            | (self.model_version is not None) * _HAS_MODEL_VERSION
            | (self.last_change is not None) * _HAS_LAST_CHANGE
        )
        dim = 0 if self.vector_sum is None else int(self.vector_sum.shape[0])
        parts = [
            _FIXED.pack(
                FORMAT, flags, self.ref_ts, self.weight, self.reviews, self.segment or 0,
                self.distance or 0.0, self.model_version or 0, self.dropped_until, dim, len(self.actions),
                len(self.offsets), len(self.pending), len(self.seen), len(self.items), len(self.acted.stages),
            ),
            _text(self.user_id),
        ]
        for action, count in self.actions.items():
            parts += [_text(action), _COUNT.pack(count)]
        for key, offset in self.offsets.items():
            parts += [_text(key), _OFFSET.pack(offset)]
        for p in self.pending:
            parts += [_text(p.event_id), _text(p.item_id), _text(p.action), _text(p.source.topic)]
            parts.append(_PENDING.pack(p.ts, p.source.partition, p.source.offset))
        if self.vector_sum is not None:
            vector = self.vector_sum.astype(np.float32)
            scale = np.abs(vector).max() or np.float32(1.0)
            parts += [_SCALE.pack(scale), (vector / scale).astype("<f2").tobytes()]
        parts.append(struct.pack(f"<{len(self.items)}I", *self.items))
        parts.append(self.acted.to_bytes())
        if self.seen:
            n = len(self.seen)
            minutes = np.ceil(np.fromiter(self.seen.values(), np.float64, n) / 60.0).astype(np.int64)
            order = np.argsort(minutes, kind="stable")  # oldest first, for mark_applied's prune check
            minutes = minutes[order]
            steps = minutes[1:] - minutes[:-1]
            parts.append(np.fromiter(self.seen.keys(), np.uint64, n)[order].astype("<u8").tobytes())
            parts.append(_MINUTE.pack(minutes[0]))
            parts.append(np.minimum(steps, _ESCAPE).astype(np.uint8).tobytes())
            parts.append(steps[steps >= _ESCAPE].astype("<u8").tobytes())
        if self.last_change is not None:
            parts.append(_change_bytes(self.last_change))
        counts = self.member_counts.to_bytes()
        parts += [_COUNT.pack(len(counts)), counts]
        return b"".join(parts)

    @staticmethod
    def held_in(raw: bytes) -> int:
        """How many behaviours a row holds for unknown items, read from its fixed fields alone."""
        fields = _fixed_fields(raw)
        return 0 if fields is None else fields[_PENDING_COUNT]

    @staticmethod
    def has_last_change(raw: bytes) -> bool:
        """Whether a row keeps a last change event, read from its fixed fields alone."""
        fields = _fixed_fields(raw)
        return fields is not None and bool(fields[_FLAGS] & _HAS_LAST_CHANGE)

    @staticmethod
    def segment_in(raw: bytes) -> int | None:
        """A row's segment (None: none yet), read from its fixed fields alone."""
        fields = _fixed_fields(raw)
        return fields[_SEGMENT] if fields is not None and fields[_FLAGS] & _HAS_SEGMENT else None

    @classmethod
    def from_bytes(cls, raw: bytes) -> UserState:
        try:
            if raw[:1] not in (bytes([FORMAT]), bytes([FORMAT_3]), bytes([FORMAT_2])):
                raise ValueError(f"first byte {raw[:1]!r}")
            return cls._read(_Reader(raw))
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"not a format-{FORMAT} user state row ({exc}); rows written by an older segstream "
                "cannot be read: start the worker with a new SEGSTREAM_APP_ID (its users table "
                "starts empty)"
            ) from exc

    @classmethod
    def _read(cls, r: _Reader) -> UserState:
        fields = _fixed_fields(r.raw)
        if fields is None:
            raise ValueError("row ends inside its fixed fields")
        (_, flags, ref_ts, weight, reviews, segment, distance, model_version, dropped_until, dim,
         n_actions, n_offsets, n_pending, n_seen, n_items, n_stages) = fields
        r.pos = {FORMAT: _FIXED, FORMAT_3: _FIXED_3, FORMAT_2: _FIXED_2}[r.raw[0]].size
        state = cls(
            r.text(),
            weight=weight,
            ref_ts=ref_ts,
            reviews=reviews,
            segment=segment if flags & _HAS_SEGMENT else None,
            distance=distance if flags & _HAS_DISTANCE else None,
            model_version=model_version if flags & _HAS_MODEL_VERSION else None,
            dropped_until=dropped_until,
        )
        state.actions = {r.text(): r.take(_COUNT)[0] for _ in range(n_actions)}
        state.offsets = {r.text(): r.take(_OFFSET)[0] for _ in range(n_offsets)}
        for _ in range(n_pending):
            event_id, item_id, action, topic = r.text(), r.text(), r.text(), r.text()
            ts, partition, offset = r.take(_PENDING)
            state.pending.append(PendingBehavior(event_id, item_id, action, ts, Source(topic, partition, offset)))
        if flags & _HAS_VECTOR:
            (scale,) = r.take(_SCALE)
            state.vector_sum = r.array("<f2", dim).astype(np.float32) * np.float32(scale)
        state.items = list(r.values("I", n_items))
        if r.raw[0] == FORMAT:
            state.acted, size = ActedItems.from_bytes(r.raw[r.pos :], n_stages)
            r.pos += size
        else:
            state.acted = ActedItems.of(state.items)
        if n_seen:
            digests = r.values("Q", n_seen)
            (first,) = r.take(_MINUTE)
            steps = r.chunk(n_seen - 1)
            escaped = iter(r.values("Q", steps.count(_ESCAPE)))
            minutes = accumulate((s if s != _ESCAPE else next(escaped) for s in steps), initial=first)
            state.seen = dict(zip(digests, [m * 60.0 for m in minutes]))
        if math.isnan(dropped_until):
            state.dropped_until = _format_2_dropped_until(state)
        if flags & _HAS_LAST_CHANGE:
            state.last_change = _read_change(r, state)
        if r.raw[0] == FORMAT:
            state.member_counts = MemberCounts.from_bytes(r.chunk(r.take(_COUNT)[0]))
        if r.pos != len(r.raw):
            raise ValueError(f"the row has {len(r.raw)} bytes, its fields {r.pos}")
        return state


def _fixed_fields(raw: bytes) -> tuple[Any, ...] | None:
    """A row's fixed fields, in format 4's order (format 3's with no filter stages, format 2's
    also with a NaN dropped_until); None for a row of no known format."""
    if raw[:1] == bytes([FORMAT]) and len(raw) >= _FIXED.size:
        return _FIXED.unpack_from(raw)
    if raw[:1] == bytes([FORMAT_3]) and len(raw) >= _FIXED_3.size:
        return (*_FIXED_3.unpack_from(raw), 0)
    if raw[:1] == bytes([FORMAT_2]) and len(raw) >= _FIXED_2.size:
        fields = _FIXED_2.unpack_from(raw)
        return (*fields[:8], math.nan, *fields[8:], 0)
    return None


def _format_2_dropped_until(state: UserState) -> float:
    """For a row written before ``dropped_until`` existed: its digests were pruned live, so any
    event older than the oldest kept may have had one (with none kept, than its latest event)."""
    if state.seen:
        return min(state.seen.values()) - 60.0
    return state.ref_ts if state.event_count else -math.inf


def _change_bytes(change: SegmentChange) -> bytes:
    source = change.source
    return b"".join([
        _CHANGE.pack(
            -1 if change.previous_segment is None else change.previous_segment,
            -1 if change.segment is None else change.segment, change.model_version,
            math.nan if change.distance is None else change.distance,
        ),
        _text(change.reason), _text(change.mode), _text("" if source is None else source.topic), _text(change.ts),
        _CHANGE_SOURCE.pack(0, 0) if source is None else _CHANGE_SOURCE.pack(source.partition, source.offset),
    ])


def _read_change(r: _Reader, state: UserState) -> SegmentChange:
    previous, segment, model_version, distance = r.take(_CHANGE)
    reason, mode, topic, ts = r.text(), r.text(), r.text(), r.text()
    partition, offset = r.take(_CHANGE_SOURCE)
    return SegmentChange(
        state.user_id, None if previous < 0 else previous, None if segment < 0 else segment, model_version,
        None if math.isnan(distance) else distance, reason, mode,  # type: ignore[arg-type]
        Source(topic, partition, offset) if topic else None, ts,
    )
