"""The per-batch flow, free of Kafka: validate -> encode -> user state -> model -> segment.

A worker feeds a micro-batch of raw messages through :meth:`Pipeline.prepare` (parse,
validate, clean; cheap), encodes the review texts off the event loop, then calls
:meth:`Pipeline.apply` with the vectors. ``apply`` folds the events into the users' states and
returns the new states, the segment changes, the dead letters and the :class:`ModelUpdate` for
the model owner. When a new model version arrives, :meth:`Pipeline.sweep` re-assigns users
(stream/core/sweep.py picks which).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from models.segmentation import ModelUpdate, Segmentation
from models.text import clean_text
from models.tokens import review_terms
from stream.config import Settings
from stream.contract.changes import Mode, Reason, SegmentChange
from stream.contract.records import (
    PARSERS, Behavior, DeadLetter, InvalidEvent, Message, Review, Source, TimeWindow, iso_ms, pseudonym,
)
from stream.core.catalogue import Catalogue, CatalogueItem, usable_vector
from stream.core.census import Census
from stream.core.replay_tracker import ReplayTracker
from stream.core.user_state import REPLAY_SEEN_MAX, PendingBehavior, UserState
from stream.core.user_store import UserStore
from stream.core.waiting_items import WaitingItems

# A review is read up to here (the model reads at most its token limit of it anyway), so a
# megabyte of text costs what a page does.
MAX_REVIEW_CHARS = 100_000


@dataclass(slots=True)
class ParsedEvent:
    message: Message
    event: Review | Behavior
    text: str = ""  # cleaned review text; empty for behaviours
    vector_index: int = -1  # row in the encoded batch, for reviews
    applied_before: bool = False  # the user's stored state has it: a duplicate, not encoded


@dataclass
class Prepared:
    parsed: list[ParsedEvent] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    foreign: list[tuple[Message, str]] = field(default_factory=list)  # (message, user id) of other partitions' users


@dataclass(frozen=True, slots=True)
class Contribution:
    """An applied event, for the profile of the segment its user is in when it is applied."""

    user_id: str
    ts: float
    terms: tuple[str, ...] = ()  # a review's distinct terms (models/tokens.py)
    item: CatalogueItem | None = None  # a behaviour's item
    item_id: str = ""
    action: str = ""
    weight: float = 0.0


@dataclass
class BatchResult:
    """What a batch or a sweep chunk writes: rows, change events, dead letters, the owner's update."""

    states: dict[str, UserState] = field(default_factory=dict)
    changes: list[SegmentChange] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    update: ModelUpdate | None = None  # for the model owner; None when nothing changed
    resent: list[SegmentChange] = field(default_factory=list)  # last changes of users whose events came again
    applied: int = 0
    duplicates: int = 0
    swept: int = 0  # users a sweep looked at


class Pipeline:
    """Applies batches of input events to user states and assigns segments with this worker's
    copy of the published model (it predicts; only the owner learns)."""

    def __init__(
        self,
        settings: Settings,
        segmentation: Segmentation,
        replay: ReplayTracker | None = None,
        clock: Callable[[], float] = time.time,
        partition_of: Callable[[str], int] | None = None,
    ) -> None:
        """``clock``: the wall clock (epoch seconds) that event times are checked against;
        ``partition_of``: the partition that holds a user's state (an event on another one is
        left in :attr:`Prepared.foreign` for the worker to forward); None: one process holds
        every user, as partition 0."""
        self.settings = settings
        self.partition_of = partition_of
        self.census = Census(segmentation.model.k, partition_of or (lambda user_id: 0))
        if partition_of is None:
            self.census.count(0, [])
        self.clock = clock
        self.segmentation = segmentation
        self.replay = replay or ReplayTracker.live()
        self.waiting = WaitingItems()  # users holding behaviours on unknown items
        self.half_life_s = settings.half_life_s
        self.horizon_s = settings.dedup_horizon_s
        self.weights = settings.action_weights
        self.kind_of_topic = {settings.topic_reviews: "review", settings.topic_behaviors: "behavior"}

    def prepare(self, messages: list[Message], users: UserStore | None = None) -> Prepared:
        """Parse and validate; every message becomes an event, a dead letter or (another
        partition's user) a foreign event. With ``users``, a review its user's state already
        applied is not given to the encoder (a replay over the current state encodes nothing)."""
        prepared = Prepared()
        stored: dict[str, UserState | None] = {}
        now = self.clock()
        window = TimeWindow(self.settings.earliest_event_ts, now + self.settings.max_future_s, self.settings.max_future_s)
        for message in messages:
            try:
                parsed = self._parse(message, window)
            except InvalidEvent as exc:
                prepared.dead_letters.append(message.dead_letter(str(exc)))
                continue
            if not self._at_home(message, parsed.event.user_id):
                prepared.foreign.append((message, parsed.event.user_id))
                continue
            if isinstance(parsed.event, Review) and not self._applied_before(parsed, users, stored):
                parsed.vector_index = len(prepared.texts)
                prepared.texts.append(parsed.text)
            prepared.parsed.append(parsed)
        return prepared

    @staticmethod
    def _applied_before(parsed: ParsedEvent, users: UserStore | None, stored: dict[str, UserState | None]) -> bool:
        """Whether the user's stored state (read once per batch into ``stored``) already
        applied this event, by the same check as :meth:`apply`; noted on ``parsed``."""
        if users is None:
            return False
        user_id = parsed.event.user_id
        if user_id not in stored:
            stored[user_id] = users.get(user_id)
        state = stored[user_id]
        event, source = parsed.event, parsed.message.source
        parsed.applied_before = state is not None and state.already_applied(event.event_id, source)
        return parsed.applied_before

    def _at_home(self, message: Message, user_id: str) -> bool:
        return message.forwarded or self.partition_of is None or self.partition_of(user_id) == message.partition

    def _parse(self, message: Message, window: TimeWindow) -> ParsedEvent:
        kind = self.kind_of_topic.get(message.topic)
        if kind is None:
            raise InvalidEvent(f"no parser for topic {message.topic!r}")
        event = PARSERS[kind](message.value, window)
        # A forwarded event's key was checked where it first arrived (and may be a pseudonym now).
        if message.key is not None and not message.forwarded and message.key.decode("utf-8", "replace") != event.user_id:
            raise InvalidEvent(f"message key {message.key!r} is not the event's user_id {event.user_id!r}")
        if self.settings.user_id_salt:  # before anything is stored, counted or forwarded
            event = dataclasses.replace(event, user_id=pseudonym(event.user_id, self.settings.user_id_salt))
        parsed = ParsedEvent(message, event)
        if isinstance(event, Review):
            parsed.text = clean_text(event.text[:MAX_REVIEW_CHARS])
            if not parsed.text:
                raise InvalidEvent("review text is empty after cleaning")
        return parsed

    def apply(self, prepared: Prepared, vectors: np.ndarray, users: UserStore, catalogue: Catalogue) -> BatchResult:
        """Fold the batch into user states, then assign the users whose vector changed and
        count the applied events in their segments' profiles."""
        result = BatchResult(dead_letters=list(prepared.dead_letters))
        self._note_forwards(prepared)
        contributions: list[Contribution] = []
        last_source: dict[str, Source] = {}
        redelivered: set[str] = set()
        for parsed in prepared.parsed:
            event, source = parsed.event, parsed.message.source
            state = result.states.get(event.user_id)
            if state is None:
                state = result.states[event.user_id] = users.get(event.user_id) or UserState(event.user_id)
            if parsed.applied_before or state.already_applied(event.event_id, source):
                result.duplicates += 1
                if self.replay.mode_of(source) == "live":
                    redelivered.add(event.user_id)
                continue
            reason = self._refusal(state, parsed, vectors)
            if reason:
                result.dead_letters.append(parsed.message.dead_letter(reason))
                continue
            state.mark_applied(event.event_id, event.ts, source, horizon_s=self._kept_horizon())
            last_source[event.user_id] = source
            result.applied += 1
            if isinstance(event, Review):
                state.reviews += 1
                state.add_vector(vectors[parsed.vector_index], self.settings.weight_review, event.ts, self.half_life_s)
                state.touch_item(event.item_id, self.settings.seen_items_max)
                self._contribute(state, Contribution(event.user_id, self._profile_ts(event.ts), terms=review_terms(parsed.text)), contributions)
            else:
                state.count_action(event.action)
                state.pending.append(PendingBehavior(event.event_id, event.item_id, event.action, event.ts, source))
            self._apply_pending(state, catalogue, result, contributions)
        self._assign_and_count(result, last_source, contributions)
        self._resend(result, redelivered)
        return result

    @staticmethod
    def _resend(result: BatchResult, redelivered: set[str]) -> None:
        """A live event that comes again was applied by a worker that may have stopped before its
        change event was delivered (rows and change events are not written atomically): send the
        user's last change again, byte for byte, unless the batch changed the user anyway.
        Consumers see at most a copy of a record they have (same version, source and ts)."""
        changed = {change.user_id for change in result.changes}
        for user_id in sorted(redelivered - changed):
            last = result.states[user_id].last_change
            if last is not None:
                result.resent.append(last)

    def release(self, states: Iterable[UserState], catalogue: Catalogue) -> BatchResult:
        """Apply the held behaviours of ``states`` whose item the catalogue now knows (found
        through :attr:`waiting`); a change they cause names the held behaviour as its source."""
        result = BatchResult()
        contributions: list[Contribution] = []
        moved: dict[str, Source] = {}
        for state in states:
            source = self._apply_pending(state, catalogue, result, contributions)
            result.states[state.user_id] = state
            if source is not None:
                moved[state.user_id] = source
        self._assign_and_count(result, moved, contributions)
        return result

    def _assign_and_count(
        self, result: BatchResult, moved: dict[str, Source], contributions: list[Contribution]
    ) -> None:
        """Count the applied events in their users' segments' profiles, then assign the users
        whose vector changed (a move takes the user's counts, these events' too, along), note
        who still waits for items, and attach the update for the owner."""
        update = self.segmentation.new_update()
        self._count_in_profiles(result, contributions, update)
        result.changes += self.assign(((result.states[user_id], source) for user_id, source in moved.items()), update)
        self.waiting.note_all(result.states.values())
        update.stats.census = self.census.take()
        result.update = update if update else None

    def _note_forwards(self, prepared: Prepared) -> None:
        """Tell the replay which of its events this batch forwarded and which forwarded ones it
        holds (applied, duplicates or dead letters): it is not over while one is on its way
        (:meth:`ReplayTracker.forwarded`)."""
        back = [p.message.source for p in prepared.parsed if p.message.forwarded]
        back += [letter.source for letter in prepared.dead_letters]
        self.replay.forwarded((message.source for message, _ in prepared.foreign), back)

    def _kept_horizon(self) -> float | None:
        """How far back rows keep event-id digests: the dedup horizon live; all of them (None)
        until a replay is over, since it reads a user's history out of order and must tell
        every event of it apart (pruned back at the user's next event once live)."""
        return self.horizon_s if self.replay.finished else None

    def _refusal(self, state: UserState, parsed: ParsedEvent, vectors: np.ndarray) -> str:
        """Why an event that was not applied yet cannot be: "" when it can. The dedup horizon
        holds for live events, which arrive roughly in time order; an event at a replayed
        position is history, read in any order, refused only when the row dropped digests that
        old (a replay on top of pruned rows, or past the digests a replay keeps)."""
        event, source = parsed.event, parsed.message.source
        if self.replay.mode_of(source) == "live" and state.beyond_horizon(event.ts, self.horizon_s):
            return (
                f"event time is more than {self.settings.dedup_horizon_days:g} days before "
                "the user's latest event, beyond the dedup horizon: it cannot be told apart "
                "from a copy already applied (SEGSTREAM_DEDUP_HORIZON_DAYS)"
            )
        if state.dropped(event.ts):
            return (
                f"event time is more than the user's row remembers: it has dropped the event-id "
                f"digests up to {iso_ms(state.dropped_until)} (beyond the dedup horizon, or past the "
                f"{REPLAY_SEEN_MAX:,} a replay keeps): it cannot be told apart from a copy already applied"
            )
        if parsed.vector_index >= 0 and not usable_vector(vectors[parsed.vector_index]):
            return "the encoder returned a vector that is not finite or is zero for this text"
        return ""

    def _profile_ts(self, ts: float) -> float:
        """An event's time as the profiles count it: never past the wall clock, so their decay
        anchor does not run ahead of it."""
        return min(ts, self.clock())

    def _contribute(self, state: UserState, c: Contribution, contributions: list[Contribution]) -> None:
        """An applied event: into the user's own counts (what they bring to a segment) and,
        through ``contributions``, into their segment's profile."""
        if c.item is None:
            state.member_counts.add_review(c.terms, c.ts, self.half_life_s)
        else:
            state.member_counts.add_behaviour(c.item_id, c.item.categories, c.action, c.weight, c.ts, self.half_life_s)
        contributions.append(c)

    @staticmethod
    def _count_in_profiles(result: BatchResult, contributions: list[Contribution], update: ModelUpdate) -> None:
        """Count each applied event in its user's segment; a user without one yet brings the
        event with their counts when a sweep gives them one."""
        for c in contributions:
            segment = result.states[c.user_id].segment
            if segment is not None:
                _count(update, segment, c)

    def _apply_pending(
        self, state: UserState, catalogue: Catalogue, result: BatchResult, contributions: list[Contribution]
    ) -> Source | None:
        """Apply held behaviours whose item is now known, dead-letter the overflow; the source
        of the last one applied."""
        applied: Source | None = None
        still_pending: list[PendingBehavior] = []
        for pending in state.pending:
            item = catalogue.get(pending.item_id)
            if item is None:
                still_pending.append(pending)
                continue
            weight = self.weights[pending.action]
            applied = pending.source
            state.add_vector(item.vector, weight, pending.ts, self.half_life_s)
            state.touch_item(pending.item_id, self.settings.seen_items_max)
            contribution = Contribution(
                state.user_id, self._profile_ts(pending.ts), item=item, item_id=pending.item_id,
                action=pending.action, weight=weight,
            )
            self._contribute(state, contribution, contributions)
        overflow = max(len(still_pending) - self.settings.pending_max, 0)
        for pending in still_pending[:overflow]:
            result.dead_letters.append(self._overflow_letter(state.user_id, pending))
        state.pending = still_pending[overflow:]
        return applied

    def _overflow_letter(self, user_id: str, pending: PendingBehavior) -> DeadLetter:
        return DeadLetter(
            f"item {pending.item_id!r} is not in the catalogue; the behaviour was held while "
            f"{self.settings.pending_max} later ones also waited for unknown items",
            pending.source,
            user_id.encode(),
            None,
            event={
                "event_id": pending.event_id,
                "user_id": user_id,
                "item_id": pending.item_id,
                "action": pending.action,
                "ts_epoch_s": pending.ts,
            },
        )

    def assign(self, moved: Iterable[tuple[UserState, Source | None]], update: ModelUpdate) -> list[SegmentChange]:
        """Assign users whose vector changed (by the input event at ``source``) with this
        worker's model version, recording their vectors and moves for the owner (which seeds
        from them while the model is unseeded); their change events."""
        with_vector = [(state, vector, source) for state, source in moved if (vector := state.vector) is not None]
        if not self.segmentation.model.seeded:
            for state, vector, _ in with_vector:
                update.stats.observe(state.user_id, vector, None)
            return []
        changes = []
        segments, distances = self._predict([(s, v) for s, v, _ in with_vector], hysteresis=True)
        for (state, vector, source), segment, distance in zip(with_vector, segments, distances):
            update.stats.observe(state.user_id, vector, segment)
            change = self._move(state, segment, distance, "event", self.replay.mode_of(source), source, update)
            if change is not None:
                changes.append(change)
        return changes

    def _predict(self, users: list[tuple[UserState, np.ndarray]], hysteresis: bool) -> tuple[list[int], list[float]]:
        """Each user's segment and distance under this worker's model, for all of them at once."""
        if not users:
            return [], []
        current = np.array([-1 if state.segment is None else state.segment for state, _ in users], dtype=np.int64)
        segments, distances = self.segmentation.predict(np.stack([v for _, v in users]), current, hysteresis)
        return segments.tolist(), distances.tolist()

    def sweep(self, states: Iterable[UserState], mode: Mode = "live", final: bool = False) -> BatchResult:
        """Re-assign users after a new model version: states whose segment changes, their
        change events (reason ``model_update``) and the size moves for the owner.

        ``final``: the membership after a replay that suppressed change events: no hysteresis
        (so the result depends only on the users' vectors and the centroids) and an event
        (reason ``replay``) for every user with a segment.
        """
        states = list(states)
        result = BatchResult(swept=len(states))
        if not self.segmentation.model.seeded:
            return result
        update = self.segmentation.new_update()
        with_vector = [(state, vector) for state in states if (vector := state.vector) is not None]
        segments, distances = self._predict(with_vector, hysteresis=not final)
        for (state, _), segment, distance in zip(with_vector, segments, distances):
            if segment == state.segment and not final:
                continue
            result.states[state.user_id] = state
            reason: Reason = "replay" if final else "model_update"
            change = self._move(state, segment, distance, reason, mode, None, update, always=final)
            if change is not None:
                result.changes.append(change)
        update.stats.census = self.census.take()
        result.update = update if update else None
        return result

    def forget(self, user_ids: Iterable[str], users: UserStore) -> BatchResult:
        """Erase users: out of the held-behaviour index and the census, their counts out of their
        segment's portrait; a ``forgotten`` change for each user who had a row, and an update
        telling the owner to drop their vectors. The caller deletes the rows (``users.delete_many``)."""
        result = BatchResult()
        update = self.segmentation.new_update()
        for user_id in dict.fromkeys(user_ids):
            self.waiting.forget(user_id)
            update.stats.forget.append(user_id)  # the owner may hold a vector of a user without a row
            state = users.get(user_id)
            if state is not None:
                self.census.move(user_id, state.segment, None)
                if state.segment is not None:
                    update.removed.add_member(state.segment, state.member_counts, user_id)
                result.changes.append(SegmentChange.forgotten(user_id, state.segment, self.segmentation.version))
        update.stats.census = self.census.take()
        result.update = update if update else None
        return result

    def _move(
        self, state: UserState, segment: int, distance: float, reason: Reason, mode: Mode, source: Source | None,
        update: ModelUpdate, always: bool = False,
    ) -> SegmentChange | None:
        """Put the user in ``segment``, their counts with them; its change event when the
        segment changed (or ``always``)."""
        previous = state.segment
        state.segment, state.distance, state.model_version = segment, distance, self.segmentation.version
        self.census.move(state.user_id, previous, segment)
        if previous != segment:
            if previous is not None:
                update.removed.add_member(previous, state.member_counts, state.user_id)
            update.profiles.add_member(segment, state.member_counts, state.user_id)
        if previous == segment and not always:
            return None
        state.last_change = SegmentChange.decided(
            state.user_id, previous, segment, self.segmentation.version, distance, reason, mode, source
        )
        return state.last_change


def _count(update: ModelUpdate, segment: int, c: Contribution) -> None:
    if c.item is None:
        update.profiles.add_terms(segment, c.terms, c.ts, c.user_id)
    else:
        update.profiles.add_action(segment, c.item_id, c.item.categories, c.action, c.weight, c.ts)

