"""Class-based TF-IDF (BERTopic's c-TF-IDF): what sets one segment's counts apart from all.

score(x, c) = tf(x, c) * log(1 + A / f(x)), where tf is x's share of segment c's counts, f(x)
the count of x over all segments and A the mean segment size. With ``reduce_frequent`` the
share is square-rooted first, as BERTopic's ``ClassTfidfTransformer(reduce_frequent_words=True)``
does: a word in most reviews of every segment ("said" in news) has a large share everywhere,
and the root shrinks that share's lead over a segment's own rarer words, so it stops topping
every label while the idf still ranks it low.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Corpus", "highest"]


@dataclass(frozen=True, slots=True)
class Corpus:
    """Totals of one kind of count over all segments, for c-TF-IDF and lift."""

    totals: dict[str, float]  # f(x): the count of x summed over segments
    average: float  # A: mean segment size, over segments that have any count
    grand_total: float

    @classmethod
    def of(cls, per_segment: Iterable[dict[str, float]]) -> Corpus:
        totals: dict[str, float] = {}
        sizes = []
        for counts in per_segment:
            for key, count in counts.items():
                totals[key] = totals.get(key, 0.0) + count
            size = sum(counts.values())
            if size > 0:
                sizes.append(size)
        grand = sum(sizes)
        return cls(totals, grand / len(sizes) if sizes else 0.0, grand)

    def ctfidf(self, counts: dict[str, float], reduce_frequent: bool = False) -> list[tuple[str, float]]:
        """(x, score(x, c)) for each x with a positive count in ``counts`` (segment c's)."""
        size = sum(counts.values())
        if size <= 0:
            return []
        tf = math.sqrt if reduce_frequent else float
        return [
            (key, tf(count / size) * math.log1p(self.average / self.totals[key]))
            for key, count in counts.items()
            if count > 0
        ]

    def lift(self, key: str, share: float) -> float:
        """How many times more of x this segment has than everyone: its share over x's overall share."""
        overall = self.totals[key] / self.grand_total
        return share / overall if overall > 0 else 0.0  # 0: the counts decayed below float range


def highest(scored: Iterable[tuple[str, float]], n: int) -> list[tuple[str, float]]:
    """The n highest scores; equal scores in key order, so results never depend on arrival."""
    return heapq.nsmallest(n, scored, key=lambda pair: (-pair[1], pair[0]))
