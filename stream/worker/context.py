"""The parts of one worker process, shared by its agents, model sync, replay hooks and web views."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from collections import Counter as TallyOf
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust

from models.encoder import Encoder
from models.segmentation import Segmentation
from stream.config import Settings
from stream.contract.records import shown
from stream.core.pipeline import Pipeline
from stream.core.recent import Recent
from stream.core.replay_tracker import ReplayTracker
from stream.core.catalogue import CatalogueRows
from stream.worker.failures import Failures, environmental
from stream.worker.store import FaustUserStore, Tables
from stream.worker.topics import Topics


log = logging.getLogger("segstream")
T = TypeVar("T")


async def survive(what: str, step: Awaitable[T], failed: T = None, failures: Failures | None = None) -> T:  # type: ignore[assignment]
    """``await step``; an error is logged and ``failed`` returned. Faust stops the whole worker
    on an exception in a timer or task: a step that can fail for a while (the broker away, a
    record no check foresaw) must not take the worker with it; it runs again next time. With
    ``failures``, one that fails for a reason of the environment makes the worker unready
    until it works again."""
    try:
        result = await step
    except Exception as exc:
        why = environmental(exc) if failures is not None else None
        if why is None:
            log.error("%s failed: %s", what, shown(exc), exc_info=exc)
        else:
            failures.failed(what, why)
        return failed
    if failures is not None:
        failures.cleared(what)
    return result


@dataclass
class Counters:
    """Process-local throughput counters served at /healthz."""

    started: float = field(default_factory=time.time)
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    changes: int = 0
    items: int = 0
    batches: int = 0
    swept: int = 0
    forwarded: int = 0  # input events sent on to their user's partition
    resent: int = 0  # last change events sent again for users whose events were redelivered
    reread: int = 0  # records the consumer skipped, read again from the broker (stream/worker/gaps.py)
    updates_received: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "started"} | {
            "uptime_s": round(time.time() - self.started, 1)
        }


@dataclass
class Tallies:
    """Labelled counts, timings and lag for /metrics (stream/worker/metrics.py)."""

    dead_letters: TallyOf[tuple[str, str]] = field(default_factory=TallyOf)  # (reason, input topic)
    changes: TallyOf[tuple[str, str]] = field(default_factory=TallyOf)  # (reason, mode) of published changes
    model_events: TallyOf[str] = field(default_factory=TallyOf)  # seed, refresh, reseed, rebuild (the owner's)
    entered: TallyOf[int] = field(default_factory=TallyOf)  # published changes into each segment
    left: TallyOf[int] = field(default_factory=TallyOf)  # published changes out of each segment
    updates_learned: int = 0  # by this worker as the owner
    encoder_batches: int = 0
    encoder_texts: int = 0
    encoder_seconds: float = 0.0
    last_batch_seconds: float = 0.0
    lag: dict[tuple[str, int], int] = field(default_factory=dict)  # input partition -> events not yet committed

    def moved(self, previous: int | None, segment: int | None) -> None:
        """Count a published change out of ``previous`` and into ``segment`` (None: no segment)."""
        if previous == segment:
            return
        if previous is not None:
            self.left[previous] += 1
        if segment is not None:
            self.entered[segment] += 1

    def encoded(self, texts: int, seconds: float) -> None:
        self.encoder_batches += 1
        self.encoder_texts += texts
        self.encoder_seconds += seconds
        self.last_batch_seconds = seconds


@dataclass
class WorkerContext:
    """What the Faust shell's modules work with: the app and its topics and tables, the stores
    over those tables, the encoder, this worker's copy of the model (``local``: it predicts;
    only the owner learns) and the pipeline that uses it, the replay (if any), counters, and
    whether the broker answers."""

    settings: Settings
    app: faust.App
    topics: Topics
    tables: Tables
    users: FaustUserStore
    catalogue: CatalogueRows
    encoder: Encoder
    local: Segmentation
    pipeline: Pipeline
    replay: ReplayTracker
    counters: Counters = field(default_factory=Counters)
    tallies: Tallies = field(default_factory=Tallies)
    recent: Recent = field(default_factory=Recent)  # for the live page (stream/worker/page.py)
    # Held from reading users' rows to writing them back (a batch, a sweep chunk, a release, a
    # recount): emit awaits the outputs' delivery in between, and nothing may read a row meanwhile.
    rows: asyncio.Lock = field(default_factory=asyncio.Lock)
    broker_healthy: Callable[[], bool] = lambda: True
    failures: Failures = field(default_factory=lambda: Failures(0.0))  # the environment's (disk, store, producer)
    exit_reason: str = ""  # set when the worker stops itself: its last line, with a non-zero status

    @property
    def settled(self) -> bool:
        """The broker answers, partitions are assigned and the tables recovered from their
        changelogs: rows may be read and written."""
        return self.broker_healthy() and not self.app.rebalancing and self.app.tables.recovery.completed.is_set()

    @property
    def ready(self) -> bool:
        """Settled, and nothing fails for a reason of the environment (stream/worker/failures.py)."""
        return self.settled and not self.failures.since

    def input_partitions(self) -> list[tuple[str, int]]:
        """The input partitions Kafka gave this worker."""
        return sorted(
            (tp.topic, tp.partition) for tp in self.app.consumer.assignment() if tp.topic in self.settings.input_topics
        )
