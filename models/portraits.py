"""What a person reads from the segments' counts: ranked terms, categories and items, labels
that tell segments apart, and the evidence behind every portrait.

A key (a term, category or item) is ranked by its smoothed lift in a segment: the events of
the segment that have it, plus a prior, over the events expected from everyone's rate, plus
the same prior. ``(observed + PRIOR) / (expected + PRIOR)`` is near 1 for keys everyone has
(the catalogue's biggest genre, its blockbusters, "said"), grows with how much more often the
segment has the key, and stays modest on few events (a key seen once cannot top a portrait);
keys with fewer than ``MIN_SUPPORT`` events come after all the others (a small shop still sees
what its few users did) and never make a label. Every count is first turned
into effective events (models/segment_counts.py): a segment's shares times its effective number
of events. Decay then changes how many events back a portrait, never which keys set it apart:
raw decayed weights of 2004 articles beside today's reviews made every old word look equally
rare. The order shown is the order used, and a label is drawn from the same ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from models.segment_counts import SegmentCounts

MIN_SUPPORT = 2.0  # effective events a key needs to be ranked (one is an anecdote)
PRIOR_EVENTS = 10.0  # added to observed and expected events: lift on few events leans to 1
THIN_EVENTS = 50  # a portrait on fewer effective events is "thin"
THIN_USERS = 10  # as is one of a segment with fewer users
LABEL_PARTS = 3
LABEL_POOL = 8  # a label is chosen among a segment's first this many ranked keys


def effective_events(total: float, squares: float) -> float:
    """Kish's effective sample size of events with these weights: (sum w)^2 / sum w^2."""
    return total * total / squares if squares > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Ranked:
    key: str
    events: float  # effective events of the segment that have the key
    share: float  # of the segment's events (reviews for terms, behaviours otherwise)
    lift: float  # smoothed: see the module docstring


def rank(counts: Sequence[dict[str, float]], masses: Sequence[float], evidence: Sequence[float]) -> list[list[Ranked]]:
    """Every segment's keys, those with ``MIN_SUPPORT`` events first, each part by smoothed
    lift (then events, then key).
    ``counts[s]``: segment s's decayed counts; ``masses[s]``: the decayed weight of the events
    they share out (each key's share is its count over it); ``evidence[s]``: effective events."""
    shares = [{key: c / m for key, c in seg.items() if c > 0} if m > 0 else {} for seg, m in zip(counts, masses)]
    observed = [{key: share * n for key, share in seg.items()} for seg, n in zip(shares, evidence)]
    everyone = sum(evidence)
    totals: dict[str, float] = {}
    for seg in observed:
        for key, events in seg.items():
            totals[key] = totals.get(key, 0.0) + events
    ranked = []
    for seg_shares, seg_events, n in zip(shares, observed, evidence):
        rows = [
            Ranked(key, events, seg_shares[key], (events + PRIOR_EVENTS) / (n * totals[key] / everyone + PRIOR_EVENTS))
            for key, events in seg_events.items()
        ]
        ranked.append(sorted(rows, key=lambda r: (r.events < MIN_SUPPORT, -r.lift, -r.events, r.key)))
    return ranked


def unique_labels(candidates: Sequence[Sequence[str]], order: Sequence[int]) -> list[str]:
    """A label per segment from its ranked candidates; segments in ``order`` (most evidence
    first) take their first choice, and a later one whose first parts were taken falls back
    to its next distinctive key (then to fewer parts), so that no two segments read the same."""
    labels = [f"segment {s}" for s in range(len(candidates))]
    used: set[frozenset[str]] = set()
    for segment in order:
        pool = list(candidates[segment][:LABEL_POOL])
        choices = (c for size in range(min(LABEL_PARTS, len(pool)), 0, -1) for c in combinations(pool, size))
        parts = next((c for c in choices if frozenset(c) not in used), None)
        if parts is not None:
            used.add(frozenset(parts))
            labels[segment] = " · ".join(parts)
    return labels


class Portraits:
    """The portraits of all k segments, ranked once from their counts (``scale``: stored units
    to weights at the reference time, for the raw weights under ``detail``)."""

    def __init__(self, segments: Sequence[SegmentCounts], scale: float) -> None:
        self.segments = segments
        self.scale = scale
        self.review_events = [effective_events(s.reviews, s.reviews_sq) for s in segments]
        self.behaviour_events = [effective_events(s.behaviours, s.behaviours_sq) for s in segments]
        self.terms = rank([s.terms for s in segments], [s.reviews for s in segments], self.review_events)
        weights = [s.behaviour_weight for s in segments]
        self.categories = rank([s.categories for s in segments], weights, self.behaviour_events)
        self.items = rank([s.items for s in segments], weights, self.behaviour_events)
        order = sorted(range(len(segments)), key=lambda s: (-self.events(s), s))
        self.labels = unique_labels([self._label_candidates(s) for s in range(len(segments))], order)

    def events(self, segment: int) -> float:
        return self.review_events[segment] + self.behaviour_events[segment]

    def _label_candidates(self, segment: int) -> list[str]:
        """Distinctive terms (lift above 1, with support), else distinctive categories."""
        for ranked in (self.terms[segment], self.categories[segment]):
            keys = [r.key for r in ranked if r.lift > 1.0 and r.events >= MIN_SUPPORT]
            if keys:
                return keys
        return []

    def evidence(self, segment: int, users: int | None) -> dict[str, Any]:
        """How much backs a portrait: effective events (reviews and behaviours), the users in
        the segment when known, and whether that is too little to read much into."""
        events = self.events(segment)
        thin = events < THIN_EVENTS or (users is not None and users < THIN_USERS)
        return {
            "users": users,
            "events": round(events, 1),
            "reviews": round(self.review_events[segment], 1),
            "behaviours": round(self.behaviour_events[segment], 1),
            "thin": thin,
        }

    def portrait(self, segment: int, top: int, users: int | None = None) -> dict[str, Any]:
        seg = self.segments[segment]
        all_events = sum(s.events for s in self.segments)
        cats, items = self.categories[segment][:top], self.items[segment][:top]
        return {
            "segment": segment,
            "label": self.labels[segment],
            "evidence": self.evidence(segment, users),
            "event_share": seg.events / all_events if all_events > 0 else 0.0,
            "top_terms": _rows("term", self.terms[segment][:top]),
            "top_categories": _rows("category", cats),
            "top_items": _rows("item_id", items),
            "actions": _shares(seg.actions),
            "detail": {
                "weight": seg.events * self.scale,
                "category_weights": {r.key: seg.categories[r.key] * self.scale for r in cats},
                "item_weights": {r.key: seg.items[r.key] * self.scale for r in items},
            },
        }


def _rows(name: str, ranked: Sequence[Ranked]) -> list[dict[str, Any]]:
    return [{name: r.key, "share": r.share, "lift": r.lift, "events": round(r.events, 1)} for r in ranked]


def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return {key: count / total for key, count in ordered} if total > 0 else {}
