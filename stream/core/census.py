"""How many of a worker's users are in each segment, per partition of the users table.

The sizes the model owner publishes are the sum of the latest census of every partition, sent
by the worker holding it (stream/worker/sizes.py). Sizes kept as a running sum of enter/leave
moves drift whenever an update is lost or learned twice (a worker or an owner killed between
sending and committing); a census is a count, so the next one puts the sizes right again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np


class Census:
    """Users per segment of the partitions counted so far; ``partition_of`` a user id's."""

    def __init__(self, k: int, partition_of: Callable[[str], int]) -> None:
        self.k = k
        self.partition_of = partition_of
        self.counts: dict[int, np.ndarray] = {}
        self.changed = False  # since the last take()

    def count(self, partition: int, segments: Iterable[int | None]) -> None:
        """Start counting ``partition`` from its users' ``segments`` (None: no segment)."""
        known = [s for s in segments if s is not None and 0 <= s < self.k]
        self.counts[partition] = np.bincount(np.asarray(known, dtype=np.int64), minlength=self.k)
        self.changed = True

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions another worker holds now (it counts them)."""
        for partition in partitions:
            self.counts.pop(partition, None)

    def move(self, user_id: str, old: int | None, new: int | None) -> None:
        """A user of a counted partition left ``old`` for ``new``."""
        counts = self.counts.get(self.partition_of(user_id))
        if counts is None or old == new:
            return
        if old is not None and 0 <= old < self.k:
            counts[old] -= 1
        if new is not None:
            counts[new] += 1
        self.changed = True

    def take(self) -> dict[int, np.ndarray]:
        """Every counted partition's counts when they changed since the last take, else {}."""
        if not self.changed:
            return {}
        self.changed = False
        return {p: c.copy() for p, c in self.counts.items()}
