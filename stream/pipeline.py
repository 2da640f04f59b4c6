"""The per-batch flow, free of Kafka: validate -> encode -> user state -> model -> segment.

The Faust agent (stream/app.py) feeds a micro-batch of raw messages through
:meth:`Pipeline.prepare` (parse, validate, clean; on the event loop, cheap), encodes the review
texts off the loop, then calls :meth:`Pipeline.apply` with the vectors. ``apply`` returns the new
user states, the segment-change events, the dead letters and the :class:`ModelUpdate` for the
model owner. When a new model version arrives, :meth:`Pipeline.sweep` re-assigns a bounded
number of users (:class:`SweepCursor`). :class:`LocalRun` wires all of it in one process.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.clustering import Assignment
from models.segmentation import ModelUpdate, Segmentation, new_segmentation
from models.text import clean_text
from stream.catalogue import CatalogueItem
from stream.config import Settings
from stream.records import PARSERS, Behavior, InvalidEvent, Item, Review, dead_letter, now_iso, parse_item
from stream.user_state import PendingBehavior, UserState

SECONDS_PER_DAY = 86_400.0
# Events applied before the model is seeded wait for their user's first segment to count in
# the profiles; beyond this many they are not counted (only the portraits lose them).
UNSEEDED_CONTRIBUTIONS_MAX = 50_000


@dataclass(frozen=True, slots=True)
class Message:
    """A raw input message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)

    def dead_letter(self, error: str) -> tuple[bytes | None, dict[str, Any]]:
        """(key, record) for the dead-letter topic: the reason and these original bytes."""
        return (self.key, dead_letter(error, *self.source, self.key, self.value))

    @classmethod
    def of(cls, message: Any) -> Message:
        """From a Kafka client's message (Faust's, aiokafka's)."""
        return cls(message.topic, message.partition, message.offset, message.key, message.value)


@dataclass(slots=True)
class ParsedEvent:
    message: Message
    event: Review | Behavior
    text: str = ""  # cleaned review text; empty for behaviours
    vector_index: int = -1  # row in the encoded batch, for reviews


@dataclass
class Prepared:
    events: list[ParsedEvent] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Contribution:
    """An applied event, for the profile of the segment its user ends the batch in."""

    user_id: str
    ts: float
    text: str = ""  # a review's cleaned text
    item: CatalogueItem | None = None  # a behaviour's item
    item_id: str = ""
    action: str = ""
    weight: float = 0.0


@dataclass
class BatchResult:
    states: dict[str, UserState] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, dict[str, Any]]] = field(default_factory=list)
    update: ModelUpdate | None = None  # for the model owner; None when nothing changed
    applied: int = 0
    duplicates: int = 0


def catalogue_text(message: Message) -> tuple[Item, str]:
    """An ``items`` message as the encoder reads it: the item and its cleaned text, or
    InvalidEvent (bad record, key not the item id, nothing left after cleaning)."""
    item = parse_item(message.value)
    if message.key is not None and message.key.decode("utf-8", "replace") != item.item_id:
        raise InvalidEvent(f"message key {message.key!r} is not the item_id {item.item_id!r}")
    text = clean_text(item.text())
    if not text:
        raise InvalidEvent("item text is empty after cleaning")
    return item, text


class Pipeline:
    """Applies batches of input events to user states and the segment model."""

    def __init__(
        self,
        settings: Settings,
        segmentation: Segmentation,
        replay_until: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        """``segmentation`` is this worker's copy of the published model (it assigns with it;
        the owner writes). Events below ``replay_until[(topic, partition)]`` are replayed."""
        self.settings = settings
        self.segmentation = segmentation
        self.replay_until = dict(replay_until or {})
        self.unseeded: dict[str, list[Contribution]] = {}  # events of users without a segment yet
        self.unseeded_held = 0
        self.half_life_s = settings.half_life_days * SECONDS_PER_DAY
        self.horizon_s = settings.dedup_horizon_days * SECONDS_PER_DAY
        self.weights = settings.action_weights
        self.kind_of_topic = {
            settings.topic_reviews: "review",
            settings.topic_behaviors: "behavior",
        }

    def prepare(self, messages: list[Message]) -> Prepared:
        """Parse and validate; every message becomes an event or a dead letter."""
        prepared = Prepared()
        for message in messages:
            kind = self.kind_of_topic.get(message.topic)
            try:
                if kind is None:
                    raise InvalidEvent(f"no parser for topic {message.topic!r}")
                event = PARSERS[kind](message.value)
                if message.key is not None and message.key.decode("utf-8", "replace") != event.user_id:
                    raise InvalidEvent(
                        f"message key {message.key!r} is not the event's user_id {event.user_id!r}"
                    )
                parsed = ParsedEvent(message, event)
                if isinstance(event, Review):
                    parsed.text = clean_text(event.text)
                    if not parsed.text:
                        raise InvalidEvent("review text is empty after cleaning")
                    parsed.vector_index = len(prepared.texts)
                    prepared.texts.append(parsed.text)
            except InvalidEvent as exc:
                prepared.dead_letters.append(message.dead_letter(str(exc)))
                continue
            prepared.events.append(parsed)
        return prepared

    def apply(
        self,
        prepared: Prepared,
        vectors: np.ndarray,
        load_state: Callable[[str], UserState | None],
        catalogue: Callable[[str], CatalogueItem | None],
    ) -> BatchResult:
        """Fold the batch into user states, then move the model, assign segments and count
        the applied events in their segments' profiles."""
        result = BatchResult(dead_letters=list(prepared.dead_letters))
        contributions: list[Contribution] = []
        last_source: dict[str, tuple[str, int, int]] = {}
        for parsed in prepared.events:
            event, message = parsed.event, parsed.message
            state = result.states.get(event.user_id)
            if state is None:
                state = load_state(event.user_id) or UserState(event.user_id)
                result.states[event.user_id] = state
            if state.already_applied(event.event_id, *message.source):
                result.duplicates += 1
                continue
            if state.beyond_horizon(event.ts, self.horizon_s):
                result.dead_letters.append(
                    message.dead_letter(
                        f"event time is more than {self.settings.dedup_horizon_days:g} days before "
                        "the user's latest event, beyond the dedup horizon: it cannot be told apart "
                        "from a copy already applied (SEGSTREAM_DEDUP_HORIZON_DAYS)",
                    )
                )
                continue
            state.mark_applied(event.event_id, event.ts, *message.source, horizon_s=self.horizon_s)
            last_source[event.user_id] = message.source
            result.applied += 1
            if isinstance(event, Review):
                state.reviews += 1
                state.add_vector(
                    vectors[parsed.vector_index], self.settings.weight_review, event.ts, self.half_life_s
                )
                state.touch_item(event.item_id, self.settings.seen_items_max)
                contributions.append(Contribution(event.user_id, event.ts, text=parsed.text))
            else:
                state.count_action(event.action)
                state.pending.append(
                    PendingBehavior(event.event_id, event.item_id, event.action, event.ts, message.source)
                )
            self._apply_pending(state, catalogue, result, contributions)
        update = self.segmentation.new_update(self.settings)
        self._assign_moved(result, last_source, update)
        self._count_in_profiles(result, contributions, update)
        result.update = update if update else None
        return result

    def mode_of(self, source: tuple[str, int, int] | None) -> str:
        """"replay" for an event below the replay's end offsets, else "live"."""
        if source is None:
            return "live"
        until = self.replay_until.get((source[0], source[1]))
        return "replay" if until is not None and source[2] < until else "live"

    def _count_in_profiles(self, result: BatchResult, contributions: list[Contribution], update: ModelUpdate) -> None:
        """Count each applied event in its user's segment; before the model is seeded, hold
        it (in memory, bounded) until a sweep gives the user a segment."""
        for c in contributions:
            segment = result.states[c.user_id].segment
            if segment is not None:
                _count(update, segment, c)
            elif self.unseeded_held < UNSEEDED_CONTRIBUTIONS_MAX:
                self.unseeded.setdefault(c.user_id, []).append(c)
                self.unseeded_held += 1

    def _apply_pending(
        self,
        state: UserState,
        catalogue: Callable[[str], CatalogueItem | None],
        result: BatchResult,
        contributions: list[Contribution],
    ) -> None:
        """Apply held behaviours whose item is now known; dead-letter the overflow."""
        still_pending: list[PendingBehavior] = []
        for pending in state.pending:
            item = catalogue(pending.item_id)
            if item is None:
                still_pending.append(pending)
                continue
            weight = self.weights[pending.action]
            state.add_vector(item.vector, weight, pending.ts, self.half_life_s)
            state.touch_item(pending.item_id, self.settings.seen_items_max)
            contributions.append(
                Contribution(state.user_id, pending.ts, item=item, item_id=pending.item_id, action=pending.action, weight=weight)
            )
        overflow = len(still_pending) - self.settings.pending_max
        for pending in still_pending[: max(overflow, 0)]:
            record = dead_letter(
                f"item {pending.item_id!r} is not in the catalogue; the behaviour was held while "
                f"{self.settings.pending_max} later ones also waited for unknown items",
                *pending.source,
                state.user_id.encode(),
                None,
            )
            record["event"] = {
                "event_id": pending.event_id,
                "user_id": state.user_id,
                "item_id": pending.item_id,
                "action": pending.action,
                "ts_epoch_s": pending.ts,
            }
            result.dead_letters.append((state.user_id.encode(), record))
        state.pending = still_pending[max(overflow, 0) :]

    def _assign_moved(
        self, result: BatchResult, last_source: dict[str, tuple[str, int, int]], update: ModelUpdate
    ) -> None:
        """Assign every user whose vector changed with this worker's model version, and record
        the vectors for the owner (which seeds from them while the model is unseeded)."""
        states = (result.states[user_id] for user_id in last_source)
        with_vector = [(state, vector) for state in states if (vector := state.vector) is not None]
        if not self.segmentation.model.seeded:
            for state, vector in with_vector:
                update.stats.observe(state.user_id, vector, None)
            return
        for (state, vector), assignment in zip(with_vector, self._assign_all(with_vector, hysteresis=True)):
            source = last_source[state.user_id]
            update.stats.observe(state.user_id, vector, assignment.segment)
            update.stats.move(state.segment, assignment.segment)
            self._assign(state, assignment, "event", source, result, self.mode_of(source))

    def _assign_all(self, users: list[tuple[UserState, np.ndarray]], hysteresis: bool) -> list[Assignment]:
        """Each user's assignment under this worker's model, computed for all of them at once."""
        if not users:
            return []
        current = np.array([-1 if state.segment is None else state.segment for state, _ in users], dtype=np.int64)
        segments, distances = self.segmentation.model.assign_all(np.stack([v for _, v in users]), current, hysteresis)
        return [Assignment(int(s), float(d)) for s, d in zip(segments, distances)]

    def sweep(self, states: Iterable[UserState], mode: str = "live", final: bool = False) -> BatchResult:
        """Re-assign users after a new model version: states whose segment changes, their
        change events (reason ``model_update``) and the size moves for the owner.

        ``final``: the membership after a replay that suppressed change events: no hysteresis
        (so the result depends only on the users' vectors and the centroids) and an event
        (reason ``replay``) for every user with a segment.
        """
        result = BatchResult()
        model = self.segmentation.model
        if not model.seeded:
            return result
        update = self.segmentation.new_update(self.settings)
        with_vector = [(state, vector) for state in states if (vector := state.vector) is not None]
        for (state, _), assignment in zip(with_vector, self._assign_all(with_vector, hysteresis=not final)):
            if assignment.segment == state.segment and not final:
                continue
            update.stats.move(state.segment, assignment.segment)
            for held in self.unseeded.pop(state.user_id, ()):
                _count(update, assignment.segment, held)
            result.states[state.user_id] = state
            self._assign(state, assignment, "replay" if final else "model_update", None, result, mode, always=final)
        result.update = update if update else None
        return result

    def _assign(
        self,
        state: UserState,
        assignment: Assignment,
        reason: str,
        source: tuple[str, int, int] | None,
        result: BatchResult,
        mode: str,
        always: bool = False,
    ) -> None:
        previous = state.segment
        state.segment = assignment.segment
        state.distance = assignment.distance
        state.model_version = self.segmentation.version
        if previous == assignment.segment and not always:
            return
        result.changes.append(
            {
                "user_id": state.user_id,
                "previous_segment": previous,
                "segment": assignment.segment,
                "model_version": self.segmentation.version,
                "distance": round(assignment.distance, 6),
                "reason": reason,
                "mode": mode,
                "source": None
                if source is None
                else {"topic": source[0], "partition": source[1], "offset": source[2]},
                "ts": now_iso(),
            }
        )


def _count(update: ModelUpdate, segment: int, c: Contribution) -> None:
    if c.item is None:
        update.profiles.add_review(segment, c.text, c.ts)
    else:
        update.profiles.add_action(segment, c.item_id, c.item.categories, c.action, c.weight, c.ts)


class SweepCursor:
    """Round robin over the users a worker holds, at most ``per_version`` per model version:
    every user is re-assigned within a bounded number of versions, at bounded cost each."""

    def __init__(self, per_version: int) -> None:
        self.per_version = per_version
        self.queue: deque[Hashable] = deque()

    def next(self, all_keys: Callable[[], Iterable[Hashable]]) -> list[Hashable]:
        """The next keys to sweep; ``all_keys`` is listed again when a round is over."""
        if not self.queue:
            self.queue.extend(all_keys())
        n = min(self.per_version, len(self.queue))
        return [self.queue.popleft() for _ in range(n)]


class LocalRun:
    """One worker and its model owner in one process over dict tables, in batch order: the
    deployment's code path minus Kafka and timing (evaluate, tests, benchmarks)."""

    def __init__(
        self, settings: Settings, dim: int, catalogue: Callable[[str], CatalogueItem | None]
    ) -> None:
        self.settings = settings
        self.owner = new_segmentation(settings, dim)
        self.pipeline = Pipeline(settings, new_segmentation(settings, dim))
        self.catalogue = catalogue
        self.table: dict[str, bytes] = {}  # the users table: rows as the Faust table stores them
        self.updates_offset = 0
        self.cursor = SweepCursor(settings.sweep_users)

    def load_state(self, user_id: str) -> UserState | None:
        stored = self.table.get(user_id)
        return None if stored is None else UserState.from_bytes(stored)

    def batch(self, messages: list[Message], vectors: np.ndarray | None = None) -> BatchResult:
        """Apply one batch (``vectors``: its review texts encoded), let the owner fold the
        update in, publish, and sweep when the version moved; returns everything emitted."""
        prepared = self.pipeline.prepare(messages)
        if vectors is None:
            vectors = np.zeros((0, self.owner.model.dim), dtype=np.float32)
        result = self.pipeline.apply(prepared, vectors, self.load_state, self.catalogue)
        self._write(result)
        self._send(result.update, result)
        return result

    def _write(self, result: BatchResult) -> None:
        for user_id, state in result.states.items():
            self.table[user_id] = state.to_bytes()

    def _send(self, update: ModelUpdate | None, result: BatchResult) -> None:
        """The update goes to the owner; a new version is published and adopted as over Kafka
        (a serialised copy), and the worker sweeps; sweep changes join ``result``'s."""
        if update is None:
            return
        self.owner.apply(update, self.updates_offset)
        self.updates_offset += 1
        published = new_segmentation(self.settings, self.owner.model.dim).restore(self.owner.to_bytes())
        if self.pipeline.segmentation.adopt(published):
            keys = self.cursor.next(lambda: list(self.table))
            swept = self.pipeline.sweep(s for s in map(self.load_state, keys) if s is not None)  # type: ignore[arg-type]
            self._write(swept)
            result.changes.extend(swept.changes)
            self._send(swept.update, result)
