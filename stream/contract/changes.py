"""The one output record: a change of a user's segment (``segment_change.json``).

The worker publishes it on ``segment-changes`` and, compacted, ``segment-membership``; the
subscriber API (stream/client.py) reads it back into the same type. A forgotten user's event
(reason ``forgotten``) has no segment and no distance; the membership topic then holds a
tombstone (null value) for the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from stream.contract.records import Source, decode_json, now_iso, validate

Reason = Literal["event", "model_update", "replay", "forgotten"]
Mode = Literal["live", "replay"]


@dataclass(frozen=True, slots=True)
class SegmentChange:
    """A user's new segment and why; ``snapshot`` (never published) marks an event a subscriber
    read from the membership topic rather than the changes topic."""

    user_id: str
    previous_segment: int | None
    segment: int | None  # None: the user was forgotten
    model_version: int
    distance: float | None  # None with segment
    reason: Reason
    mode: Mode
    source: Source | None  # the input event that moved the user; None for sweeps and replays
    ts: str  # ISO-8601 UTC, when it was decided
    snapshot: bool = False

    @classmethod
    def decided(
        cls,
        user_id: str,
        previous: int | None,
        segment: int,
        model_version: int,
        distance: float,
        reason: Reason,
        mode: Mode,
        source: Source | None,
    ) -> SegmentChange:
        """A change decided now (``ts`` is the wall clock)."""
        return cls(user_id, previous, segment, model_version, round(distance, 6), reason, mode, source, now_iso())

    @classmethod
    def forgotten(cls, user_id: str, previous: int | None, model_version: int) -> SegmentChange:
        """The user was erased (``segstream forget``, ``DELETE /users/{id}``): they leave
        ``previous`` for no segment."""
        return cls(user_id, previous, None, model_version, None, "forgotten", "live", None, now_iso())

    def to_doc(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "previous_segment": self.previous_segment,
            "segment": self.segment,
            "model_version": self.model_version,
            "distance": self.distance,
            "reason": self.reason,
            "mode": self.mode,
            "source": None if self.source is None else self.source.to_doc(),
            "ts": self.ts,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_doc()).encode()

    @classmethod
    def from_json(cls, raw: bytes | None, snapshot: bool = False) -> SegmentChange:
        """Parse a message value; InvalidEvent names what does not follow the schema."""
        doc = decode_json(raw)
        validate("segment_change", doc)
        source = doc["source"]
        return cls(
            user_id=doc["user_id"],
            previous_segment=doc["previous_segment"],
            segment=doc["segment"],
            model_version=doc["model_version"],
            distance=None if doc["distance"] is None else float(doc["distance"]),
            reason=doc["reason"],
            mode=doc["mode"],
            source=None if source is None else Source(source["topic"], source["partition"], source["offset"]),
            ts=doc["ts"],
            snapshot=snapshot,
        )
