"""What one user brings to a segment's portrait: their own decayed counts, kept in their row.

A portrait describes the users in a segment now. Events count in the segment their user is in
when they are applied; when the user moves, their counts leave the old segment and join the
new one (:meth:`models.profiles.SegmentProfiles.add_member`), so users bring their history
with them, and a segment that formed after its users acted has a portrait at once.

Counts decay in event time like everything else: stored relative to an anchor time (the
user's first event, moved forward now and then), so an event adds one term, whatever its
order. A row stays small: at most ``MAX_KEYS`` terms and items each (the largest kept);
categories and actions are small vocabularies. What a pruned key counted stays in the segment
the user leaves and decays there.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from models.segment_counts import SegmentCounts

MAX_KEYS = 30
_REBASE_HALF_LIVES = 64.0
_HEAD = struct.Struct("<ddddddd")  # anchor, ref_ts, reviews, reviews_sq, behaviours, behaviours_sq, behaviour_weight
_ENTRY = struct.Struct("<Hf")  # key length, count (float32: a portrait's shares need no more)
_SIZES = struct.Struct("<HHHH")  # terms, items, categories, actions


@dataclass
class MemberCounts:
    """One user's counts, relative to ``anchor`` (None: nothing counted yet)."""

    anchor: float | None = None
    ref_ts: float = -math.inf  # the latest event time counted
    totals: SegmentCounts = field(default_factory=SegmentCounts)  # sums and keys, as a segment's

    @property
    def empty(self) -> bool:
        return self.anchor is None

    def _mass(self, ts: float, half_life_s: float) -> float:
        if self.anchor is None:
            self.anchor = ts
        elif ts - self.anchor > _REBASE_HALF_LIVES * half_life_s:
            self.totals.rescale(2.0 ** ((self.anchor - ts) / half_life_s))
            self.anchor = ts
        self.ref_ts = max(self.ref_ts, ts)
        return 2.0 ** ((ts - self.anchor) / half_life_s)

    def add_review(self, terms: Iterable[str], ts: float, half_life_s: float) -> None:
        mass = self._mass(ts, half_life_s)
        self.totals.add_review(mass)
        for term in dict.fromkeys(terms):
            self.totals.terms[term] = self.totals.terms.get(term, 0.0) + mass
        self.totals.terms = _bounded(self.totals.terms)

    def add_behaviour(
        self, item_id: str, categories: Sequence[str], action: str, weight: float, ts: float, half_life_s: float
    ) -> None:
        mass = self._mass(ts, half_life_s)
        weighted = weight * mass
        self.totals.add_behaviour(mass, action, weighted)
        self.totals.items[item_id] = self.totals.items.get(item_id, 0.0) + weighted
        for category in dict.fromkeys(categories):
            self.totals.categories[category] = self.totals.categories.get(category, 0.0) + weighted
        self.totals.items = _bounded(self.totals.items)

    def to_bytes(self) -> bytes:
        if self.anchor is None:
            return b""
        t = self.totals
        parts = [
            _HEAD.pack(self.anchor, self.ref_ts, t.reviews, t.reviews_sq, t.behaviours, t.behaviours_sq, t.behaviour_weight),
            _SIZES.pack(len(t.terms), len(t.items), len(t.categories), len(t.actions)),
        ]
        for counts in (t.terms, t.items, t.categories, t.actions):
            for key, count in counts.items():
                raw = key.encode()
                parts += [_ENTRY.pack(len(raw), count), raw]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, raw: bytes) -> MemberCounts:
        if not raw:
            return cls()
        anchor, ref_ts, *sums = _HEAD.unpack_from(raw)
        sizes, pos = _SIZES.unpack_from(raw, _HEAD.size), _HEAD.size + _SIZES.size
        dicts: list[dict[str, float]] = []
        for size in sizes:
            counts = {}
            for _ in range(size):
                length, count = _ENTRY.unpack_from(raw, pos)
                pos += _ENTRY.size + length
                counts[raw[pos - length : pos].decode()] = float(count)
            dicts.append(counts)
        if pos != len(raw):
            raise ValueError(f"member counts of {len(raw)} bytes hold {pos}")
        reviews, reviews_sq, behaviours, behaviours_sq, weight = sums
        totals = SegmentCounts(
            events=reviews + behaviours, reviews=reviews, reviews_sq=reviews_sq, behaviours=behaviours,
            behaviours_sq=behaviours_sq, behaviour_weight=weight,
            terms=dicts[0], items=dicts[1], categories=dicts[2], actions=dicts[3],
        )
        return cls(anchor, ref_ts, totals)


def _bounded(counts: dict[str, float]) -> dict[str, float]:
    """At most ``MAX_KEYS`` keys: past it, the largest (ties by key) are kept."""
    if len(counts) <= MAX_KEYS:
        return counts
    kept = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:MAX_KEYS]
    return dict(kept)
