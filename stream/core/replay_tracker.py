"""A worker's view of a replay: which events are replayed, its progress, and what to do next.

``segstream replay`` (stream/replay.py) plans the start and end offsets; this tracker, free of
Kafka, follows the worker through them. A worker that replays nothing holds
:meth:`ReplayTracker.live`: every event is live and nothing waits.
"""

from __future__ import annotations

import time
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
    started: float = field(default_factory=time.monotonic)
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

    def observe_item(self, source: Source) -> None:
        """A catalogue item was encoded."""
        end = self.catalogue_until.get((source.topic, source.partition))
        if end is not None and source.offset + 1 >= end:
            del self.catalogue_until[(source.topic, source.partition)]

    @property
    def caught_up(self) -> bool:
        """Every replayed partition processed to its end (the time is noted the first time)."""
        if self.caught_up_after_s is None and self.remaining() == 0:
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

    def progress(self) -> dict[str, Any]:
        elapsed = (self.caught_up_after_s if self.caught_up_after_s is not None else time.monotonic() - self.started)
        done = self.total - self.remaining()
        rate = done / elapsed if elapsed > 0 else 0.0
        left = self.remaining()
        return {
            "events": self.total,
            "done": done,
            "lag": left,
            "events_per_s": round(rate, 1),
            "eta_s": round(left / rate, 1) if rate > 0 else None,
            "elapsed_s": round(elapsed, 1),
            "caught_up": self.caught_up,
            "finished": self.finished,
            "suppress_changes": self.suppress,
        }
