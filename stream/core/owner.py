"""The model owner: the single writer of the segmentation.

Whichever worker holds the one partition of the updates topic owns the model. It receives
every worker's :class:`ModelUpdate` in offset order, learns each exactly once (the offset is
recorded in the model), and publishes a snapshot after changes, at most once per
``publish_interval_s`` (at once for a replay's rebuild, which a replay waits for). The Faust
shell (stream/worker/model_sync.py) runs it in a thread of its own and sends its snapshots;
:class:`~stream.core.local_run.LocalRun` calls it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from threadpoolctl import ThreadpoolController

from models.segmentation import ModelUpdate, Segmentation


class RefusedUpdate(ValueError):
    """An update the owner does not learn (a non-finite vector, say), and why."""


class ModelOwner:
    """Learns updates into ``segmentation`` and says when to publish it."""

    def __init__(
        self,
        segmentation: Segmentation,
        publish_interval_s: float,
        seed_idle_s: float = float("inf"),
        clock: Callable[[], float] = time.monotonic,
        threads: int | None = 1,
    ) -> None:
        """``seed_idle_s``: with fewer users than the model seeds on, seed anyway once no
        update came for this long (:meth:`tick`). ``threads``: BLAS/OpenMP threads a refresh's
        k-means may use (None: no limit); one leaves the worker's other cores to its batches."""
        self.segmentation = segmentation
        self.publish_interval_s = publish_interval_s
        self.seed_idle_s = seed_idle_s
        self.clock = clock
        self.threads = threads
        self.dirty = False  # learned something not yet published
        self.published_at = -float("inf")
        self.received_at = clock()
        # Found once: a search per update held the GIL for ~3 ms.
        self._thread_pools = ThreadpoolController() if threads is not None else None

    def receive(self, update: ModelUpdate, offset: int) -> bool:
        """Learn the update at ``offset`` of the updates topic unless already learned;
        RefusedUpdate for one that would make the model non-finite."""
        self.received_at = self.clock()
        problem = update.problem()
        if problem:
            raise RefusedUpdate(problem)
        learned = self._on_threads(self.segmentation.learn, update, offset)
        self.dirty |= learned
        return learned

    def tick(self) -> bool:
        """Once the input went quiet: seed early with fewer users than the model seeds on (at
        least k), or refresh a seeded model (:meth:`StreamingKMeans.refresh_when_quiet`); True
        when the model changed."""
        if self.clock() - self.received_at < self.seed_idle_s:
            return False
        model = self.segmentation.model
        changed = self._on_threads(model.refresh_when_quiet if model.seeded else model.seed_early)
        self.dirty |= changed
        return changed

    def _on_threads(self, fn: Callable[..., bool], *args: object) -> bool:
        if self._thread_pools is None:
            return fn(*args)
        with self._thread_pools.limit(limits=self.threads):
            return fn(*args)

    def publish_due(self, update: ModelUpdate) -> bool:
        """Publish now? After changes, once the interval has passed; at once for a rebuild."""
        if not self.dirty:
            return False
        return update.stats.rebuild is not None or self.clock() - self.published_at >= self.publish_interval_s

    def snapshot(self) -> bytes | None:
        """The model to publish, if it changed since the last snapshot (then it counts as published)."""
        if not self.dirty:
            return None
        self.dirty = False
        self.published_at = self.clock()
        return self.segmentation.to_bytes()
