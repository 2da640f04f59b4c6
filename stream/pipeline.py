"""The per-batch flow, free of Kafka: validate -> encode -> user state -> model -> segment.

The Faust agent (stream/app.py) feeds a micro-batch of raw messages through
:meth:`Pipeline.prepare` (parse, validate, clean; on the event loop, cheap), encodes the review
texts off the loop, then calls :meth:`Pipeline.apply` with the vectors. ``apply`` returns the new
user states, the segment-change events and the dead letters for the shell to write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.clustering import Assignment, StreamingKMeans
from models.profiles import SegmentProfiles
from models.text import clean_text
from stream.catalogue import CatalogueItem
from stream.config import Settings
from stream.records import PARSERS, Behavior, InvalidEvent, Item, Review, dead_letter, now_iso, parse_item
from stream.user_state import PendingBehavior, UserState

SECONDS_PER_DAY = 86_400.0


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
    applied: int = 0
    duplicates: int = 0
    model_changed: bool = False


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
        model: StreamingKMeans,
        profiles: SegmentProfiles | None = None,
        mode: str = "live",
    ) -> None:
        self.settings = settings
        self.model = model
        self.profiles = profiles
        self.mode = mode
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
        before: dict[str, int | None] = {}  # each user's segment before this batch
        last_source: dict[str, tuple[str, int, int]] = {}
        for parsed in prepared.events:
            event, message = parsed.event, parsed.message
            state = result.states.get(event.user_id)
            if state is None:
                state = load_state(event.user_id) or UserState(event.user_id)
                result.states[event.user_id] = state
                before[event.user_id] = state.segment
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
        self._update_model(result, before, last_source, load_state)
        self._count_in_profiles(result, contributions)
        return result

    def _count_in_profiles(self, result: BatchResult, contributions: list[Contribution]) -> None:
        if self.profiles is None:
            return
        for c in contributions:
            segment = result.states[c.user_id].segment
            if segment is None:
                continue
            if c.item is None:
                self.profiles.add_review(segment, c.text, c.ts)
            else:
                self.profiles.add_action(segment, c.item_id, c.item.categories, c.action, c.weight, c.ts)

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

    def _update_model(
        self,
        result: BatchResult,
        before: dict[str, int | None],
        last_source: dict[str, tuple[str, int, int]],
        load_state: Callable[[str], UserState | None],
    ) -> None:
        """Move users in the model and assign them; seed or refresh when due, and sweep the
        users whose segment a seed or refresh changed."""
        model = self.model
        vectors = {u: result.states[u].vector for u in last_source}
        moved = [(u, src) for u, src in last_source.items() if vectors[u] is not None]
        if not moved:
            return
        model.version += 1
        result.model_changed = True
        for user_id, source in moved:
            state = result.states[user_id]
            assignment = model.observe(user_id, before[user_id], vectors[user_id])
            if assignment is not None:
                self._assign(state, assignment, "event", source, result)
        if model.ready_to_seed():
            swept = model.seed()
        elif model.needs_refresh():
            swept = model.refresh()
        else:
            return
        for user_id, assignment in swept.items():
            state = result.states.get(user_id) or load_state(user_id)
            if state is not None:
                result.states[user_id] = state
                self._assign(state, assignment, "model_update", last_source.get(user_id), result)

    def _assign(
        self,
        state: UserState,
        assignment: Assignment,
        reason: str,
        source: tuple[str, int, int] | None,
        result: BatchResult,
    ) -> None:
        previous = state.segment
        state.segment = assignment.segment
        state.distance = assignment.distance
        state.model_version = self.model.version
        if previous == assignment.segment:
            return
        result.changes.append(
            {
                "user_id": state.user_id,
                "previous_segment": previous,
                "segment": assignment.segment,
                "model_version": self.model.version,
                "distance": round(assignment.distance, 6),
                "reason": reason,
                "mode": self.mode,
                "source": None
                if source is None
                else {"topic": source[0], "partition": source[1], "offset": source[2]},
                "ts": now_iso(),
            }
        )
