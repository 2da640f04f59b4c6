"""Sweeps: when a new model version arrives, a worker re-assigns a bounded share of its users.

Round robin (:class:`SweepCursor`): every user follows moving centroids within a bounded
number of versions, at bounded cost per version. A live sweep also takes at most a share of the
worker's time (:func:`pause_after`): at a new version every second, sweeping 2,000 users each
time can cost a slow CPU more than the events do, and the worker would fall ever further behind
its input. A replay's final membership sweeps everyone at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from stream.contract.changes import Mode
from stream.core.pipeline import BatchResult, Pipeline
from stream.core.user_store import UserStore

CHUNK_USERS = 250  # users per chunk: a worker yields to its event loop between chunks


def pause_after(busy_s: float, share: float) -> float:
    """Seconds to leave to other work after a sweep chunk took ``busy_s``, so that sweeping
    takes ``share`` (0 < share <= 1) of the time."""
    return busy_s * (1.0 - share) / share


class SweepCursor:
    """Round robin over the users a worker holds, at most ``per_version`` per model version."""

    def __init__(self, per_version: int) -> None:
        self.per_version = per_version
        self.queue: deque[str] = deque()

    def next(self, all_ids: Callable[[], Iterable[str]]) -> list[str]:
        """The next user ids to sweep; ``all_ids`` is listed again when a round is over."""
        if not self.queue:
            self.queue.extend(all_ids())
        n = min(self.per_version, len(self.queue))
        return [self.queue.popleft() for _ in range(n)]


class Sweeper:
    """Re-assigns a worker's users with its pipeline's model, a chunk at a time."""

    def __init__(self, pipeline: Pipeline, users: UserStore, per_version: int, chunk: int = CHUNK_USERS) -> None:
        self.pipeline = pipeline
        self.users = users
        self.cursor = SweepCursor(per_version)
        self.chunk = chunk

    def chunks(self, mode: Mode = "live", final: bool = False) -> Iterator[BatchResult]:
        """One :meth:`Pipeline.sweep` result per chunk of the users due now (all of them for
        ``final``); each chunk is read from the store when its turn comes, without the users
        this worker no longer holds (a rebalance between chunks)."""
        user_ids = self.users.user_ids() if final else self.cursor.next(self.users.user_ids)
        for begin in range(0, len(user_ids), self.chunk):
            held = self.users.held(user_ids[begin : begin + self.chunk])
            states = [s for s in map(self.users.get, held) if s is not None]
            yield self.pipeline.sweep(states, mode=mode, final=final)
