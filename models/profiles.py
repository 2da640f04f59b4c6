"""Explainable, time-decayed portraits of segments, and segment popularity for recommendations.

A segment's centroid is a point in embedding space: nobody can read it. This module keeps, per
segment, the statistics a person can read — the words of its users' reviews, the categories and
items they act on, their mix of actions, and how many events back them — from which
models/portraits.py ranks what sets each segment apart. The same item counts answer "what is popular in
this segment right now" for recommendations. Raw review text is never stored, only the set of
terms of each review.

Decay runs in event time, as for users (``stream/core/user_state.py``): at reference time T, the
latest event time seen by this object, an event at time t weighs ``w * 2^(-(T - t) / half_life)``.

Decay scheme: counts are stored relative to an anchor time A rather than to T. An event at t
adds ``w * 2^((t - A) / half_life)``; a read multiplies by ``2^(-(T - A) / half_life)``. Adding
an event is then O(1) whatever its time — a newer event does not rescale anything — and the
stored sum is the same whatever the arrival order (up to float rounding), because no term
depends on what arrived before. Shares and effective event numbers are ratios of counts that
share one anchor, so they need no conversion at all (sums of squared weights scale by the
square). The stored values grow as ``2^((T - A) / half_life)`` (their squares as its square); once T runs more than ``_REBASE_HALF_LIVES`` half-lives past A,
every count is multiplied down once and A moves to T (O(all counts), at most once per that many
half-lives of event time, so the weights stay far from float overflow). ``to_doc`` writes A
and the stored values verbatim, so a restored object reads exactly the same numbers.

Memory is bounded per segment: past ``max_terms`` terms (or ``max_items`` items) the smallest
counts are dropped in bulk, down to 90% of the bound (lossy: a key dropped while small starts
from zero if it comes back). Categories and actions (small vocabularies) are not bounded. A term
shows only once ``term_min_users`` users used it (models/term_privacy.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.member_counts import MemberCounts
from models.portraits import Portraits
from models.segment_counts import SegmentCounts
from models.term_privacy import user_hash
from models.tokens import review_terms

__all__ = ["ProfileParams", "SegmentProfiles", "review_terms"]

_FORMAT = 1
# Counts are stored relative to the anchor time; they reach at most 2^this before a rebase.
_REBASE_HALF_LIVES = 256.0
# Pruning keeps this share of the bound, so that it runs once per ~10% of new entries.
_PRUNE_TO = 0.9
# A count that a subtraction leaves below this share of what it was is rounding, not evidence.
_RESIDUE = 1e-9


@dataclass(frozen=True)
class ProfileParams:
    """How profiles count: k segments, the event-time half-life, and the bounds per segment."""

    k: int
    half_life_s: float
    max_terms: int = 4000
    max_items: int = 2000
    term_min_users: int = 1


class SegmentProfiles:
    """Per-segment decayed term, category, item and action counts for k segments."""

    def __init__(
        self, k: int, half_life_s: float, max_terms: int = 4000, max_items: int = 2000, term_min_users: int = 1
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not (half_life_s > 0 and math.isfinite(half_life_s)):
            raise ValueError(f"half_life_s must be positive and finite, got {half_life_s}")
        if max_terms < 1 or max_items < 1:
            raise ValueError(f"max_terms and max_items must be at least 1, got {max_terms}, {max_items}")
        if term_min_users < 1:
            raise ValueError(f"term_min_users must be at least 1, got {term_min_users}")
        self.k = k
        self.term_min_users = term_min_users
        self.half_life_s = float(half_life_s)
        self.max_terms = max_terms
        self.max_items = max_items
        self._segments = [SegmentCounts() for _ in range(k)]
        self._anchor: float | None = None  # A: stored counts are relative to this time
        self._ref_ts: float | None = None  # T: the latest event time seen
        # Ranked once on the first read after a write: reads (HTTP views, recommendations)
        # come in bursts between writes and each ranking is O(all counts).
        self._portraits: Portraits | None = None

    @classmethod
    def new(cls, params: ProfileParams) -> SegmentProfiles:
        return cls(params.k, params.half_life_s, params.max_terms, params.max_items, params.term_min_users)

    @classmethod
    def new_like(cls, other: SegmentProfiles) -> SegmentProfiles:
        """Empty profiles configured as ``other``."""
        return cls(other.k, other.half_life_s, other.max_terms, other.max_items, other.term_min_users)

    @property
    def empty(self) -> bool:
        """Nothing was ever counted."""
        return self._anchor is None

    # --- writing ---------------------------------------------------------------------------

    def add_review(self, segment: int, text: str, ts: float, user_id: str = "") -> None:
        """Count each distinct term of one (already cleaned) review by ``user_id`` once."""
        self.add_terms(segment, review_terms(text), ts, user_id)

    def add_terms(self, segment: int, terms: Iterable[str], ts: float, user_id: str = "") -> None:
        """Count one review by its distinct terms (``review_terms``: the caller tokenized it)."""
        seg = self._segment(segment)
        mass = self._stamp(ts)
        seg.add_review(mass)
        users = (user_hash(user_id),)
        for term in terms:
            self._count_term(seg, term, mass, users)
        self._bound_terms(seg)

    def _count_term(self, seg: SegmentCounts, term: str, mass: float, users: Iterable[int]) -> None:
        """A portrait term counts at once, another waits until enough users used it."""
        if term in seg.terms:
            seg.terms[term] += mass
            return
        promoted = seg.candidates.add(term, mass, users, self.term_min_users)
        if promoted is not None:
            seg.terms[term] = promoted

    def _bound_terms(self, seg: SegmentCounts) -> None:
        if len(seg.terms) > self.max_terms:
            seg.terms = _prune(seg.terms, self.max_terms)
        if len(seg.candidates.counts) > self.max_terms:
            seg.candidates.keep(_prune(seg.candidates.counts, self.max_terms))

    def add_action(
        self, segment: int, item_id: str, categories: Sequence[str], action: str, weight: float, ts: float
    ) -> None:
        """Count one behaviour: the item and each of its categories with the action's weight.

        Every distinct category gets the full weight (not a split): buying a comedy-drama is
        evidence of taste for comedy and for drama, and shares stay normalised by the segment's
        total category count anyway. The action mix counts events, unweighted, so that it reads
        as "what share of this segment's behaviour is purchases".
        """
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(f"weight must be non-negative and finite, got {weight}")
        seg = self._segment(segment)
        mass = self._stamp(ts)
        weighted = weight * mass
        seg.add_behaviour(mass, action, weighted)
        seg.items[item_id] = seg.items.get(item_id, 0.0) + weighted
        for category in dict.fromkeys(categories):
            seg.categories[category] = seg.categories.get(category, 0.0) + weighted
        if len(seg.items) > self.max_items:
            seg.items = _prune(seg.items, self.max_items)

    def merge(self, other: SegmentProfiles) -> None:
        """Add ``other``'s counts (a worker batch's) as if its events had been added here.

        Exact: stored counts convert between anchors by one factor (see the module docstring).
        """
        if (other.k, other.half_life_s) != (self.k, self.half_life_s):
            raise ValueError(f"profiles for k={other.k}, half-life {other.half_life_s}s; these have k={self.k}, {self.half_life_s}s")
        if other._anchor is None or other._ref_ts is None:
            return
        self._stamp(other._ref_ts)
        assert self._anchor is not None
        factor = 2.0 ** ((other._anchor - self._anchor) / self.half_life_s)
        for mine, theirs in zip(self._segments, other._segments):
            mine.add_totals(theirs, factor)
            for term, count in theirs.terms.items():
                mine.terms[term] = mine.terms.get(term, 0.0) + mine.candidates.pop(term) + count * factor
            for term, count in theirs.candidates.counts.items():
                self._count_term(mine, term, count * factor, theirs.candidates.users.get(term, ()))
            self._add_keys(mine, theirs, factor)

    def add_member(self, segment: int, member: MemberCounts, user_id: str) -> None:
        """Add a user's own counts (models/member_counts.py) to ``segment``: they joined it."""
        if member.anchor is None:
            return
        seg = self._segment(segment)
        self._stamp(member.ref_ts)
        assert self._anchor is not None
        factor = 2.0 ** ((member.anchor - self._anchor) / self.half_life_s)
        seg.add_totals(member.totals, factor)
        users = (user_hash(user_id),)
        for term, count in member.totals.terms.items():
            self._count_term(seg, term, count * factor, users)
        self._add_keys(seg, member.totals, factor)

    def _add_keys(self, mine: SegmentCounts, theirs: SegmentCounts, factor: float) -> None:
        """Add ``theirs``' items, categories and actions at ``factor``; keep within the bounds."""
        for counts, added in zip(mine.counters()[1:], theirs.counters()[1:]):
            for key, count in added.items():
                counts[key] = counts.get(key, 0.0) + count * factor
        self._bound_terms(mine)
        if len(mine.items) > self.max_items:
            mine.items = _prune(mine.items, self.max_items)

    def subtract(self, other: SegmentProfiles) -> None:
        """Take ``other``'s counts away (members who left, a worker batch's): never below zero,
        and a key whose count falls to a rounding residue is dropped."""
        if other._anchor is None or other._ref_ts is None or self._anchor is None:
            return
        self._stamp(other._ref_ts)
        factor = 2.0 ** ((other._anchor - self._anchor) / self.half_life_s)
        for mine, theirs in zip(self._segments, other._segments):
            for name, value in theirs.totals().items():
                kept = getattr(mine, name) - value * (factor * factor if name.endswith("_sq") else factor)
                setattr(mine, name, max(kept, 0.0))
            for term, count in {**theirs.candidates.counts, **theirs.terms}.items():
                _reduce(mine.terms if term in mine.terms else mine.candidates.counts, term, count * factor)
            for counts, removed in zip(mine.counters()[1:], theirs.counters()[1:]):
                for key, count in removed.items():
                    _reduce(counts, key, count * factor)

    def forget_user(self, user_id: str) -> None:
        """A forgotten user leaves the candidate terms' users (counts name no one and stay)."""
        for seg in self._segments:
            seg.candidates.forget(user_hash(user_id))

    def problem(self) -> str:
        """Why these counts must not be merged ("" when they may): a count or a time that is not
        finite, or a negative count."""
        for ts in (self._anchor, self._ref_ts):
            if ts is not None and not math.isfinite(ts):
                return f"profile time {ts} is not finite"
        for seg in self._segments:
            for counts in (*seg.counters(), seg.candidates.counts, seg.totals()):
                if not all(math.isfinite(c) and c >= 0 for c in counts.values()):
                    return "profile counts are not finite and non-negative"
        return ""

    def _segment(self, segment: int) -> SegmentCounts:
        if not 0 <= segment < self.k:
            raise ValueError(f"segment {segment} out of range for k={self.k}")
        return self._segments[segment]

    def _stamp(self, ts: float) -> float:
        """Advance the clock to ``ts`` if it is newer; return an event's multiplier in stored units."""
        ts = float(ts)
        if not math.isfinite(ts):
            raise ValueError(f"event time must be finite, got {ts}")
        self._portraits = None
        if self._anchor is None or self._ref_ts is None:
            self._anchor = self._ref_ts = ts
        elif ts > self._ref_ts:
            self._ref_ts = ts
            if (ts - self._anchor) / self.half_life_s > _REBASE_HALF_LIVES:
                self._rescale(2.0 ** ((self._anchor - ts) / self.half_life_s))
                self._anchor = ts
        return 2.0 ** ((ts - self._anchor) / self.half_life_s)

    def _rescale(self, factor: float) -> None:
        """Multiply every stored count by ``factor`` (when the anchor moves)."""
        for seg in self._segments:
            seg.rescale(factor)

    def _scale(self) -> float:
        """Multiplier from stored units to weights at the reference time T."""
        if self._anchor is None or self._ref_ts is None:
            return 1.0
        return 2.0 ** ((self._anchor - self._ref_ts) / self.half_life_s)

    # --- reading ---------------------------------------------------------------------------

    def profile(self, segment: int, top: int = 10, users: int | None = None) -> dict[str, Any]:
        """A readable portrait of one segment (models/portraits.py); ``users``: how many the
        segment has, for its evidence."""
        self._segment(segment)
        _check_top(top)
        return self.portraits().portrait(segment, top, users)

    def profiles(self, top: int = 10, users: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Portraits of all k segments; ``users``: each segment's number of users."""
        _check_top(top)
        portraits = self.portraits()
        return [portraits.portrait(s, top, None if users is None else int(users[s])) for s in range(self.k)]

    def portraits(self) -> Portraits:
        if self._portraits is None:
            self._portraits = Portraits(self._segments, self._scale())
        return self._portraits

    def item_counts(self, segment: int | None) -> dict[str, float]:
        """The decayed weighted count of each item in ``segment`` (None: all segments), in
        stored units: only their ratios mean something (shares, rankings)."""
        if segment is not None:
            return dict(self._segment(segment).items)
        counts: dict[str, float] = {}
        for seg in self._segments:
            for item, count in seg.items.items():
                counts[item] = counts.get(item, 0.0) + count
        return counts

    # --- persistence -----------------------------------------------------------------------

    def to_doc(self, candidates: bool = False) -> dict[str, Any]:
        """JSON-ready; floats are written in shortest round-trip form, so restoring is exact.
        ``candidates``: also the terms below the user threshold, with their users' hashes (a
        worker's update for the owner only; a published model never carries them)."""
        return {
            "format": _FORMAT,
            "k": self.k,
            "half_life_s": self.half_life_s,
            "max_terms": self.max_terms,
            "max_items": self.max_items,
            "term_min_users": self.term_min_users,
            "anchor": self._anchor,
            "ref_ts": self._ref_ts,
            "segments": [s.to_doc(candidates) for s in self._segments],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SegmentProfiles:
        if doc.get("format") != _FORMAT:
            raise ValueError(f"unsupported segment profiles format {doc.get('format')!r}")
        # Written before the user threshold existed: its terms are not known to meet it, and go.
        with_terms = "term_min_users" in doc
        profiles = cls(
            int(doc["k"]), float(doc["half_life_s"]), int(doc["max_terms"]), int(doc["max_items"]),
            int(doc.get("term_min_users", 1)),
        )
        if len(doc["segments"]) != profiles.k:
            raise ValueError(f"{len(doc['segments'])} segments stored for k={profiles.k}")
        profiles._segments = [SegmentCounts.from_doc(s, with_terms) for s in doc["segments"]]
        profiles._anchor = None if doc["anchor"] is None else float(doc["anchor"])
        profiles._ref_ts = None if doc["ref_ts"] is None else float(doc["ref_ts"])
        return profiles

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_doc(), separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> SegmentProfiles:
        return cls.from_doc(json.loads(raw))


def _reduce(counts: dict[str, float], key: str, amount: float) -> None:
    """``counts[key] -= amount``; the key goes when that leaves nothing but rounding."""
    before = counts.get(key, 0.0)
    after = before - amount
    if after <= _RESIDUE * max(before, amount):
        counts.pop(key, None)
    else:
        counts[key] = after


def _check_top(top: int) -> None:
    if top < 0:
        raise ValueError(f"top must be non-negative, got {top}")


def _prune(counts: dict[str, float], bound: int) -> dict[str, float]:
    """Keep the largest counts, down to 90% of ``bound`` (ties kept in key order).

    Finds the cutoff by sorting bare floats, which is several times faster than ranking
    (count, key) pairs: a prune runs once per ~10% of the bound in new keys.
    """
    keep = max(1, int(bound * _PRUNE_TO))
    cutoff = sorted(counts.values(), reverse=True)[keep - 1]
    kept = {key: count for key, count in counts.items() if count > cutoff}
    tied = sorted(key for key, count in counts.items() if count == cutoff)
    kept.update((key, cutoff) for key in tied[: keep - len(kept)])
    return kept
