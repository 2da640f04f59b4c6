"""Explainable, time-decayed portraits of segments, and segment popularity for recommendations.

A segment's centroid is a point in embedding space: nobody can read it. This module keeps, per
segment, the statistics a person can read — the words of its users' reviews, the categories and
items they act on, their mix of actions — and ranks them by how much they set the segment apart
(class-based TF-IDF, as BERTopic's c-TF-IDF). The same item counts answer "what is popular in
this segment right now" for recommendations. Raw review text is never stored, only the set of
terms of each review.

Decay runs in event time, as for users (``stream/core/user_state.py``): at reference time T, the
latest event time seen by this object, an event at time t weighs ``w * 2^(-(T - t) / half_life)``.

Decay scheme: counts are stored relative to an anchor time A rather than to T. An event at t
adds ``w * 2^((t - A) / half_life)``; a read multiplies by ``2^(-(T - A) / half_life)``. Adding
an event is then O(1) whatever its time — a newer event does not rescale anything — and the
stored sum is the same whatever the arrival order (up to float rounding), because no term
depends on what arrived before. Rankings, shares, lifts and c-TF-IDF scores are ratios of
counts that share one anchor, so they need no conversion at all. The stored values grow as
``2^((T - A) / half_life)``; once T runs more than ``_REBASE_HALF_LIVES`` half-lives past A,
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
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from models.term_privacy import Candidates, user_hash
from models.terms import Corpus, highest
from models.tokens import review_terms

__all__ = ["ProfileParams", "SegmentProfiles", "review_terms"]

_FORMAT = 1
# Counts are stored relative to the anchor time; they reach at most 2^this before a rebase.
_REBASE_HALF_LIVES = 256.0
# Pruning keeps this share of the bound, so that it runs once per ~10% of new entries.
_PRUNE_TO = 0.9
_LABEL_PARTS = 3

_Kind = Literal["terms", "categories", "items"]


@dataclass(frozen=True)
class ProfileParams:
    """How profiles count: k segments, the event-time half-life, and the bounds per segment."""

    k: int
    half_life_s: float
    max_terms: int = 4000
    max_items: int = 2000
    term_min_users: int = 1


@dataclass(slots=True)
class _Segment:
    """One segment's counts, all relative to the owning object's anchor time."""

    events: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)
    items: dict[str, float] = field(default_factory=dict)
    categories: dict[str, float] = field(default_factory=dict)
    actions: dict[str, float] = field(default_factory=dict)
    candidates: Candidates = field(default_factory=Candidates)  # terms below the user threshold

    def counters(self) -> tuple[dict[str, float], ...]:
        return self.terms, self.items, self.categories, self.actions

    def to_doc(self, candidates: bool) -> dict[str, Any]:
        doc = {
            "events": self.events,
            "terms": self.terms,
            "items": self.items,
            "categories": self.categories,
            "actions": self.actions,
        }
        return doc | {"candidates": self.candidates.to_doc()} if candidates else doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any], with_terms: bool) -> _Segment:
        return cls(
            events=float(doc["events"]),
            terms={str(t): float(c) for t, c in doc["terms"].items()} if with_terms else {},
            items={str(i): float(c) for i, c in doc["items"].items()},
            categories={str(g): float(c) for g, c in doc["categories"].items()},
            actions={str(a): float(c) for a, c in doc["actions"].items()},
            candidates=Candidates.from_doc(doc.get("candidates")),
        )


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
        self._segments = [_Segment() for _ in range(k)]
        self._anchor: float | None = None  # A: stored counts are relative to this time
        self._ref_ts: float | None = None  # T: the latest event time seen
        # Cross-segment totals, rebuilt on the first read after a write: reads (HTTP views,
        # recommendations) come in bursts between writes and each build is O(all counts).
        self._corpora: dict[_Kind, Corpus] = {}

    @classmethod
    def new(cls, params: ProfileParams) -> SegmentProfiles:
        return cls(params.k, params.half_life_s, params.max_terms, params.max_items, params.term_min_users)

    @property
    def empty(self) -> bool:
        """Nothing was ever counted."""
        return self._anchor is None

    # --- writing ---------------------------------------------------------------------------

    def add_review(self, segment: int, text: str, ts: float, user_id: str = "") -> None:
        """Count each distinct term of one (already cleaned) review by ``user_id`` once."""
        seg = self._segment(segment)
        mass = self._stamp(ts)
        seg.events += mass
        users = (user_hash(user_id),)
        for term in review_terms(text):
            self._count_term(seg, term, mass, users)
        self._bound_terms(seg)

    def _count_term(self, seg: _Segment, term: str, mass: float, users: Iterable[int]) -> None:
        """A portrait term counts at once, another waits until enough users used it."""
        if term in seg.terms:
            seg.terms[term] += mass
            return
        promoted = seg.candidates.add(term, mass, users, self.term_min_users)
        if promoted is not None:
            seg.terms[term] = promoted

    def _bound_terms(self, seg: _Segment) -> None:
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
        seg.events += mass
        seg.actions[action] = seg.actions.get(action, 0.0) + mass
        weighted = weight * mass
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
            mine.events += theirs.events * factor
            for term, count in theirs.terms.items():
                mine.terms[term] = mine.terms.get(term, 0.0) + mine.candidates.pop(term) + count * factor
            for term, count in theirs.candidates.counts.items():
                self._count_term(mine, term, count * factor, theirs.candidates.users.get(term, ()))
            for counts, added in zip(mine.counters()[1:], theirs.counters()[1:]):
                for key, count in added.items():
                    counts[key] = counts.get(key, 0.0) + count * factor
            self._bound_terms(mine)
            if len(mine.items) > self.max_items:
                mine.items = _prune(mine.items, self.max_items)

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
            for counts in (*seg.counters(), seg.candidates.counts, {"events": seg.events}):
                if not all(math.isfinite(c) and c >= 0 for c in counts.values()):
                    return "profile counts are not finite and non-negative"
        return ""

    def _segment(self, segment: int) -> _Segment:
        if not 0 <= segment < self.k:
            raise ValueError(f"segment {segment} out of range for k={self.k}")
        return self._segments[segment]

    def _stamp(self, ts: float) -> float:
        """Advance the clock to ``ts`` if it is newer; return an event's multiplier in stored units."""
        ts = float(ts)
        if not math.isfinite(ts):
            raise ValueError(f"event time must be finite, got {ts}")
        self._corpora.clear()
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
            seg.events *= factor
            seg.candidates.rescale(factor)
            for counts in seg.counters():
                for key in counts:
                    counts[key] *= factor

    def _scale(self) -> float:
        """Multiplier from stored units to weights at the reference time T."""
        if self._anchor is None or self._ref_ts is None:
            return 1.0
        return 2.0 ** ((self._anchor - self._ref_ts) / self.half_life_s)

    # --- reading ---------------------------------------------------------------------------

    def profile(self, segment: int, top: int = 10) -> dict[str, Any]:
        """A readable portrait of one segment (see :meth:`profiles` for all of them)."""
        self._segment(segment)
        _check_top(top)
        return self._profile(segment, top)

    def profiles(self, top: int = 10) -> list[dict[str, Any]]:
        """Portraits of all k segments."""
        _check_top(top)
        return [self._profile(s, top) for s in range(self.k)]

    def _corpus(self, kind: _Kind) -> Corpus:
        corpus = self._corpora.get(kind)
        if corpus is None:
            corpus = self._corpora[kind] = Corpus.of(getattr(s, kind) for s in self._segments)
        return corpus

    def _profile(self, segment: int, top: int) -> dict[str, Any]:
        """Terms, categories and items are ranked by c-TF-IDF: frequent here, rare elsewhere.

        Ranking categories (and items) by raw share would give every segment the same
        portrait — the catalogue's biggest genre and its blockbusters — and lift alone
        promotes categories seen once; c-TF-IDF weighs both, as it does for words. Terms use
        the square-rooted share (models/terms.py), so words of every segment do not label one.
        People read shares (of this segment's counts) and lifts (that share over everyone's);
        the decayed weights behind them are under ``detail``.
        """
        seg = self._segments[segment]
        n = max(top, _LABEL_PARTS)
        top_terms = highest(self._corpus("terms").ctfidf(seg.terms, reduce_frequent=True), n)
        cats, items = self._corpus("categories"), self._corpus("items")
        top_cats = highest(cats.ctfidf(seg.categories), top)
        top_items = highest(items.ctfidf(seg.items), top)
        label_parts = [t for t, _ in top_terms] or [c for c, _ in highest(cats.ctfidf(seg.categories), n)]
        all_events = sum(s.events for s in self._segments)
        scale = self._scale()
        return {
            "segment": segment,
            "label": " · ".join(label_parts[:_LABEL_PARTS]) or f"segment {segment}",
            "event_share": seg.events / all_events if all_events > 0 else 0.0,
            "top_terms": [{"term": t, "score": s} for t, s in top_terms[:top]],
            "top_categories": _ranked("category", top_cats, seg.categories, cats),
            "top_items": _ranked("item_id", top_items, seg.items, items),
            "actions": _shares(dict(highest(seg.actions.items(), len(seg.actions)))),
            "detail": {
                "weight": seg.events * scale,
                "category_weights": {c: seg.categories[c] * scale for c, _ in top_cats},
                "item_weights": {i: seg.items[i] * scale for i, _ in top_items},
            },
        }

    def popular_items(self, segment: int | None, n: int, exclude: Container[str] = frozenset()) -> list[str]:
        """The n items with the highest decayed weighted count in ``segment`` (None: all segments),
        skipping those ``in exclude`` (a set, or any container: only ``in`` is used).

        Ties go to the smaller item id, so the same state always recommends the same list.
        """
        if n <= 0:
            return []
        if segment is None:
            counts = self._corpus("items").totals
        else:
            counts = self._segment(segment).items
        return [i for i, _ in highest(((i, c) for i, c in counts.items() if i not in exclude), n)]

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
        profiles._segments = [_Segment.from_doc(s, with_terms) for s in doc["segments"]]
        profiles._anchor = None if doc["anchor"] is None else float(doc["anchor"])
        profiles._ref_ts = None if doc["ref_ts"] is None else float(doc["ref_ts"])
        return profiles

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_doc(), separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> SegmentProfiles:
        return cls.from_doc(json.loads(raw))


def _ranked(name: str, scored: list[tuple[str, float]], counts: dict[str, float], corpus: Corpus) -> list[dict[str, Any]]:
    """Ranked keys with their share of this segment's counts, lift over everyone, c-TF-IDF score."""
    size = sum(counts.values())
    return [
        {name: key, "share": counts[key] / size, "lift": corpus.lift(key, counts[key] / size), "score": score}
        for key, score in scored
    ]


def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: count / total for key, count in counts.items()} if total > 0 else {}


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
