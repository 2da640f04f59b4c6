"""One worker and its model owner in one process: the deployment's code path minus Kafka.

Batches go through the worker's :class:`Pipeline` over an in-memory user store; each update
goes to the :class:`ModelOwner` at the next offset; a snapshot it publishes is read back as the
workers read it (serialised, then adopted), and a new version is swept by the worker's
:class:`Sweeper`, whose updates go to the owner in turn. Used by ``segstream evaluate``, the
tests and the bench; timing (the publish interval, batching by wall clock) is left out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.segmentation import ModelUpdate, Segmentation, SegmentationParams
from stream.config import Settings
from stream.contract.records import Message
from stream.core.catalogue import Catalogue
from stream.core.owner import ModelOwner
from stream.core.pipeline import BatchResult, Pipeline
from stream.core.sweep import Sweeper
from stream.core.user_store import InMemoryUserStore, UserStore
from stream.factories import segmentation_params


class LocalRun:
    """``settings`` configure the pipeline; ``params`` the segmentation (default: from settings);
    ``encode`` turns review texts into vectors (None: no reviews expected); ``users`` holds the
    users (default: rows in memory, as the table stores them)."""

    def __init__(
        self,
        settings: Settings,
        dim: int,
        catalogue: Catalogue,
        encode: Callable[[list[str]], np.ndarray] | None = None,
        params: SegmentationParams | None = None,
        users: UserStore | None = None,
    ) -> None:
        self.params = params or segmentation_params(settings)
        self.dim = dim
        self.catalogue = catalogue
        self.encode = encode
        self.users = users or InMemoryUserStore()
        self.owner = ModelOwner(Segmentation.new(self.params, dim), publish_interval_s=0.0)
        self.pipeline = Pipeline(settings, Segmentation.new(self.params, dim))
        self.sweeper = Sweeper(self.pipeline, self.users, settings.sweep_users)
        self.next_offset = 0  # of the updates topic

    @property
    def segmentation(self) -> Segmentation:
        """The owner's segmentation (what it publishes)."""
        return self.owner.segmentation

    def batch(self, messages: list[Message]) -> BatchResult:
        """Apply one batch, then let the model loop run (:meth:`submit`); returns everything
        emitted, sweep changes included."""
        result = self.apply(messages)
        self.submit(result.update, result)
        return result

    def apply(self, messages: list[Message]) -> BatchResult:
        """The worker's side of a batch alone: prepare, encode, apply, write the rows."""
        prepared = self.pipeline.prepare(messages, self.users)
        if prepared.texts and self.encode is None:
            raise ValueError("reviews in a batch, and this run has no encoder")
        vectors = self.encode(prepared.texts) if self.encode else np.zeros((0, self.dim), dtype=np.float32)
        result = self.pipeline.apply(prepared, vectors, self.users, self.catalogue)
        self.users.put_many(result.states.values())
        return result

    def submit(self, update: ModelUpdate | None, into: BatchResult) -> None:
        """The update goes to the owner; what it publishes is adopted, and a new version swept;
        the sweeps' changes join ``into``'s, their updates go to the owner in turn."""
        if update is None:
            return
        self.owner.receive(update, self.next_offset)
        self.next_offset += 1
        snapshot = self.owner.snapshot()
        if snapshot is None:
            return
        published = Segmentation.from_bytes(snapshot, self.params, self.dim)
        if not self.pipeline.segmentation.adopt(published):
            return
        swept = list(self.sweeper.chunks())
        for chunk in swept:
            self.users.put_many(chunk.states.values())
            into.changes.extend(chunk.changes)
        for chunk in swept:
            self.submit(chunk.update, into)
