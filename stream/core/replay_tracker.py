"""A worker's view of a replay: which events are replayed, its progress, and what to do next.

``segstream replay`` (stream/replay.py) plans the start and end offsets; this tracker, free of
Kafka, follows the worker through them. A worker that replays nothing holds
:meth:`ReplayTracker.live`: every event is live and nothing waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from stream.contract.changes import Mode, SegmentChange
from stream.contract.records import Source

Partition = tuple[str, int]


@dataclass
class ReplayTracker:
    """Events below ``until`` are replayed; the catalogue below ``catalogue_until`` comes first.

    ``suppress``: no change events while replaying; once caught up the worker asks the owner
    for a deterministic rebuild and publishes every user's final segment to the membership
    topic (``rebuild``: "canonical" ids for a fresh deployment, "matched" to the current ones
    on top of existing state).
    """

    start: dict[Partition, int]
    until: dict[Partition, int]
    catalogue_until: dict[Partition, int] = field(default_factory=dict)
    suppress: bool = False
    rebuild: str = "matched"
    replaying: bool = True  # False: a live worker's tracker (see live())
    positions: dict[Partition, int] = field(default_factory=dict)  # next offset to process
    forwards: set[Source] = field(default_factory=set)  # replayed events forwarded, not arrived yet
    started: float = field(default_factory=time.monotonic)
    # When the first batch was processed and how much was done then: the rate counts from there,
    # not from the start (recovery, loading the model and the catalogue come before any event).
    first_seen: tuple[float, int] | None = None
    caught_up_after_s: float | None = None
    rebuild_requested_at: int | None = None  # model version when the rebuild was asked for
    finished: bool = False  # caught up (and, with suppress, the final membership published)

    @classmethod
    def live(cls) -> ReplayTracker:
        """The tracker of a worker that replays nothing."""
        return cls(start={}, until={}, replaying=False, finished=True)

    # --- what is replayed -----------------------------------------------------------------------

    def mode_of(self, source: Source | None) -> Mode:
        """"replay" for an event below the replay's end offsets, else "live"."""
        if source is None:
            return "live"
        until = self.until.get((source.topic, source.partition))
        return "replay" if until is not None and source.offset < until else "live"

    def publishes(self, change: SegmentChange) -> bool:
        """False for the change events a replay with ``suppress`` holds back."""
        return not (self.suppress and change.mode == "replay" and change.reason != "replay")

    @property
    def catalogue_ready(self) -> bool:
        return not self.catalogue_until

    # --- progress -------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return sum(max(0, end - self.start.get(tp, 0)) for tp, end in self.until.items())

    def remaining(self) -> int:
        return sum(max(0, end - self.positions.get(tp, self.start.get(tp, 0))) for tp, end in self.until.items())

    def observe(self, source: Source) -> None:
        """An input event was processed."""
        tp = (source.topic, source.partition)
        self.positions[tp] = max(self.positions.get(tp, 0), source.offset + 1)

    def forwarded(self, out: Iterable[Source], back: Iterable[Source]) -> None:
        """Replayed events forwarded to their user's partition (``out``) and forwarded events
        that arrived (``back``, under their first position). Processing an input position only
        forwards some events: the replay is caught up once those are applied too, or the final
        membership would miss them and rows would be pruned before them. The replaying worker
        is the group's only one, so every forward comes back to it."""
        if not self.finished:
            self.forwards.update(source for source in out if self.mode_of(source) == "replay")
            self.forwards.difference_update(back)

    def observe_batch(self, sources: Iterable[Source], now: float | None = None) -> None:
        """A batch of input events was processed; the first batch starts the rate's clock."""
        for source in sources:
            self.observe(source)
        if self.first_seen is None:
            self.first_seen = (time.monotonic() if now is None else now, self.total - self.remaining())

    def observe_item(self, source: Source) -> None:
        """A catalogue item was encoded."""
        end = self.catalogue_until.get((source.topic, source.partition))
        if end is not None and source.offset + 1 >= end:
            del self.catalogue_until[(source.topic, source.partition)]

    @property
    def caught_up(self) -> bool:
        """Every replayed partition processed to its end and every forwarded event arrived (the
        time is noted the first time)."""
        if self.caught_up_after_s is None and self.remaining() == 0 and not self.forwards:
            self.caught_up_after_s = time.monotonic() - self.started
        return self.caught_up_after_s is not None

    # --- what to do next ------------------------------------------------------------------------

    def next_step(self, model_version: int) -> Literal["live", "rebuild"] | None:
        """Once caught up: "live" (the replay is over, noted) or, with ``suppress``, "rebuild"
        once (ask the owner for the rebuild; the final membership follows it). None otherwise."""
        if self.finished or not self.caught_up:
            return None
        if not self.suppress:
            self.finished = True
            return "live"
        if self.rebuild_requested_at is None:
            self.rebuild_requested_at = model_version
            return "rebuild"
        return None

    def final_version_arrived(self, rebuilt_version: int) -> bool:
        """The owner's rebuild this replay asked for is in the worker's model: time for the
        final membership."""
        return (
            not self.finished and self.rebuild_requested_at is not None and rebuilt_version > self.rebuild_requested_at
        )

    def sweep_mode(self) -> Mode:
        """How a sweep's change events are labelled."""
        return "replay" if not self.finished else "live"

    def rate(self, now: float | None = None) -> float | None:
        """Events per second since the first batch; None until a later one says how fast."""
        if self.first_seen is None:
            return None
        at, done_then = self.first_seen
        if self.caught_up_after_s is not None:
            end = self.started + self.caught_up_after_s
        else:
            end = time.monotonic() if now is None else now
        done = self.total - self.remaining() - done_then
        return done / (end - at) if done > 0 and end > at else None

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate: 0 once caught up, None while the rate is unknown."""
        if self.caught_up:
            return 0.0
        rate = self.rate(now)
        return None if rate is None else self.remaining() / rate

    def progress(self, now: float | None = None) -> dict[str, Any]:
        """For /healthz."""
        elapsed = (self.caught_up_after_s if self.caught_up_after_s is not None else time.monotonic() - self.started)
        rate, eta = self.rate(now), self.eta_s(now)
        return {
            "events": self.total,
            "done": self.total - self.remaining(),
            "lag": self.remaining(),
            "forwards_on_their_way": len(self.forwards),
            "events_per_s": None if rate is None else round(rate, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "elapsed_s": round(elapsed, 1),
            "caught_up": self.caught_up,
            "finished": self.finished,
            "suppress_changes": self.suppress,
        }

    def line(self, now: float | None = None) -> str:
        """The progress as a log line: "replay: 1,234 of 5,000 events (24%), 812/s, about 5 s left"."""
        done, total = self.total - self.remaining(), self.total
        share = 100 * done // total if total else 100
        rate, eta = self.rate(now), self.eta_s(now)
        parts = [f"replay: {done:,} of {total:,} events ({share}%)"] + ([] if rate is None else [f"{rate:,.0f}/s"])
        if self.caught_up:
            parts.append(f"caught up after {duration(self.caught_up_after_s or 0.0)}")
        else:
            parts.append("time left unknown" if eta is None else f"about {duration(eta)} left")
        return ", ".join(parts)


def duration(seconds: float) -> str:
    """"5 s", "12 min", "2 h 5 min": as precise as an estimate deserves."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60} min"
