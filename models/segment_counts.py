"""One segment's decayed counts, in the stored units of :class:`~models.profiles.SegmentProfiles`.

Besides the counts of terms, items, categories and actions, a segment keeps the sum and the sum
of squares of its events' weights, apart for reviews and behaviours. They give its evidence as
an effective number of events (Kish: ``(sum w)^2 / sum w^2``): n for n events of equal weight,
and the recent ones' number when old events have decayed to nothing. That number does not
depend on the units the weights are stored in, so portraits of old and new segments compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.term_privacy import Candidates


@dataclass(slots=True)
class SegmentCounts:
    """One segment's counts, relative to the owning profiles' anchor time."""

    events: float = 0.0
    reviews: float = 0.0  # sum of the reviews' weights
    reviews_sq: float = 0.0  # sum of their squares
    behaviours: float = 0.0  # sum of the behaviours' weights (events, not action weights)
    behaviours_sq: float = 0.0
    behaviour_weight: float = 0.0  # sum of weight * action weight: what items and categories add up to
    terms: dict[str, float] = field(default_factory=dict)
    items: dict[str, float] = field(default_factory=dict)
    categories: dict[str, float] = field(default_factory=dict)
    actions: dict[str, float] = field(default_factory=dict)
    candidates: Candidates = field(default_factory=Candidates)  # terms below the user threshold

    def counters(self) -> tuple[dict[str, float], ...]:
        return self.terms, self.items, self.categories, self.actions

    def add_review(self, mass: float) -> None:
        self.events += mass
        self.reviews += mass
        self.reviews_sq += mass * mass

    def add_behaviour(self, mass: float, action: str, weighted: float) -> None:
        self.events += mass
        self.behaviours += mass
        self.behaviours_sq += mass * mass
        self.behaviour_weight += weighted
        self.actions[action] = self.actions.get(action, 0.0) + mass

    def add_totals(self, other: SegmentCounts, factor: float) -> None:
        """Add ``other``'s sums, converted to these units by ``factor``."""
        self.events += other.events * factor
        self.reviews += other.reviews * factor
        self.reviews_sq += other.reviews_sq * factor * factor
        self.behaviours += other.behaviours * factor
        self.behaviours_sq += other.behaviours_sq * factor * factor
        self.behaviour_weight += other.behaviour_weight * factor

    def rescale(self, factor: float) -> None:
        """Multiply every stored value by ``factor`` (the anchor moved); squares by its square."""
        self.events *= factor
        self.reviews *= factor
        self.behaviours *= factor
        self.behaviour_weight *= factor
        self.reviews_sq *= factor * factor
        self.behaviours_sq *= factor * factor
        self.candidates.rescale(factor)
        for counts in self.counters():
            for key in counts:
                counts[key] *= factor

    def totals(self) -> dict[str, float]:
        return {
            "events": self.events, "reviews": self.reviews, "reviews_sq": self.reviews_sq,
            "behaviours": self.behaviours, "behaviours_sq": self.behaviours_sq, "behaviour_weight": self.behaviour_weight,
        }

    def to_doc(self, candidates: bool) -> dict[str, Any]:
        doc = self.totals() | {
            "terms": self.terms,
            "items": self.items,
            "categories": self.categories,
            "actions": self.actions,
        }
        return doc | {"candidates": self.candidates.to_doc()} if candidates else doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any], with_terms: bool) -> SegmentCounts:
        """Counts written before segments kept their evidence sums have none: they read as
        no evidence (thin) until new events come."""
        return cls(
            **{name: float(doc.get(name, 0.0)) for name in cls().totals()},
            terms={str(t): float(c) for t, c in doc["terms"].items()} if with_terms else {},
            items={str(i): float(c) for i, c in doc["items"].items()},
            categories={str(g): float(c) for g, c in doc["categories"].items()},
            actions={str(a): float(c) for a, c in doc["actions"].items()},
            candidates=Candidates.from_doc(doc.get("candidates")),
        )
