"""The event contract: JSON Schema files in ``stream/contract/schemas`` are the single definition.

Input bytes are validated against those schemas and turned into small typed records; whatever
does not validate raises :class:`InvalidEvent`, whose message ends up in a :class:`DeadLetter`.
A :class:`Message` is an input record as the worker receives it; :class:`Source` says where it
was, as every change event and dead letter does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

import fastjsonschema

ACTIONS = ("view", "click", "cart", "purchase")
Action = Literal["view", "click", "cart", "purchase"]


class InvalidEvent(ValueError):
    """An input event that cannot be applied; the message says why, in words."""


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a record type (review, behavior, item, segment_change, dead_letter)."""
    text = resources.files("stream.contract.schemas").joinpath(f"{name}.json").read_text("utf-8")
    return json.loads(text)


@cache
def _validator(name: str) -> Callable[[Any], Any]:
    """The schema compiled to Python (fastjsonschema): ~2 µs an event instead of ~50."""
    return fastjsonschema.compile(schema(name))


@dataclass(frozen=True, slots=True)
class Review:
    event_id: str
    user_id: str
    item_id: str
    text: str
    rating: float | None
    ts: float  # epoch seconds, event time


@dataclass(frozen=True, slots=True)
class Behavior:
    event_id: str
    user_id: str
    item_id: str
    action: Action
    ts: float


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    title: str
    categories: tuple[str, ...]
    description: str

    def text(self) -> str:
        """What the encoder reads for an item: 'title. categories. description'."""
        parts = [self.title.strip()]
        if self.categories:
            parts.append(", ".join(self.categories))
        if self.description:
            parts.append(self.description.strip())
        return ". ".join(p for p in parts if p)


def parse_ts(value: Any) -> float:
    """Event time as epoch seconds from an ISO-8601 string or epoch milliseconds."""
    if isinstance(value, bool):
        raise InvalidEvent("ts: expected ISO-8601 string or epoch milliseconds, got a boolean")
    if isinstance(value, (int, float)):
        if value != value or value < 0:
            raise InvalidEvent(f"ts: epoch milliseconds must be a non-negative number, got {value!r}")
        return float(value) / 1000.0
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise InvalidEvent(f"ts: not an ISO-8601 time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def decode_json(raw: bytes | None) -> dict[str, Any]:
    """The JSON object in a message value, or InvalidEvent saying what is wrong with it."""
    if raw is None:
        raise InvalidEvent("empty message value (tombstone)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"value is not UTF-8: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"value is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidEvent(f"value must be a JSON object, got {type(doc).__name__}")
    return doc


def validate(name: str, doc: dict[str, Any]) -> None:
    """Raise InvalidEvent with the first schema violation, naming the field."""
    try:
        _validator(name)(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = exc.name.removeprefix("data").lstrip(".") or "event"
        message = exc.message.removeprefix(exc.name).strip()
        raise InvalidEvent(f"{name} schema: {where} {message}") from exc


def _ident(value: Any, field_name: str) -> str:
    text = str(value).strip()
    if not text:
        raise InvalidEvent(f"{field_name}: must not be empty")
    return text


def parse_review(raw: bytes | None) -> Review:
    doc = decode_json(raw)
    validate("review", doc)
    rating = doc.get("rating")
    return Review(
        event_id=doc["event_id"],
        user_id=_ident(doc["user_id"], "user_id"),
        item_id=_ident(doc["item_id"], "item_id"),
        text=doc["text"],
        rating=None if rating is None else float(rating),
        ts=parse_ts(doc["ts"]),
    )


def parse_behavior(raw: bytes | None) -> Behavior:
    doc = decode_json(raw)
    validate("behavior", doc)
    return Behavior(
        event_id=doc["event_id"],
        user_id=_ident(doc["user_id"], "user_id"),
        item_id=_ident(doc["item_id"], "item_id"),
        action=doc["action"],
        ts=parse_ts(doc["ts"]),
    )


def parse_item(raw: bytes | None) -> Item:
    doc = decode_json(raw)
    validate("item", doc)
    return Item(
        item_id=_ident(doc["item_id"], "item_id"),
        title=doc["title"],
        categories=tuple(doc.get("categories") or ()),
        description=doc.get("description") or "",
    )


PARSERS: dict[str, Callable[[bytes | None], Review | Behavior]] = {
    "review": parse_review,
    "behavior": parse_behavior,
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Source:
    """Where an input record was: topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    def to_doc(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input event that could not be applied (``dead_letter.json``): the reason, where it came
    from and its original bytes; ``event`` holds what is known of an event whose bytes are gone
    (a behaviour held in a user's row)."""

    error: str
    source: Source
    key: bytes | None
    value: bytes | None
    event: dict[str, Any] | None = None
    ts: str = field(default_factory=now_iso)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "error": self.error,
            "source": self.source.to_doc(),
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "value": None,
            "value_base64": None,
            "ts": self.ts,
        }
        if self.value is not None:
            try:
                doc["value"] = self.value.decode("utf-8")
            except UnicodeDecodeError:
                doc["value_base64"] = base64.b64encode(self.value).decode("ascii")
        if self.event is not None:
            doc["event"] = self.event
        return doc

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_doc()).encode()


@dataclass(frozen=True, slots=True)
class Message:
    """A raw input message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> Source:
        return Source(self.topic, self.partition, self.offset)

    def dead_letter(self, error: str) -> DeadLetter:
        """This message's dead letter: the reason and these original bytes."""
        return DeadLetter(error, self.source, self.key, self.value)

    @classmethod
    def of(cls, message: Any) -> Message:
        """From a Kafka client's message (Faust's, aiokafka's)."""
        return cls(message.topic, message.partition, message.offset, message.key, message.value)
