"""The event contract: JSON Schema files in ``stream/contract/schemas`` are the single definition.

Input bytes are validated against those schemas and turned into small typed records; whatever
does not validate raises :class:`InvalidEvent`, whose message ends up in a :class:`DeadLetter`.
A :class:`Message` is an input record as the worker receives it; :class:`Source` says where it
was, as every change event and dead letter does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

import fastjsonschema

ACTIONS = ("view", "click", "cart", "purchase")
SHOWN_CHARS = 120  # of a bad value quoted in a reason
# A dead letter carries at most this much of the original key and value (with their size and
# digest), so that it always fits a Kafka message.
DEAD_LETTER_VALUE_BYTES = 64 * 1024
DEAD_LETTER_KEY_BYTES = 1024
DEAD_LETTER_ERROR_CHARS = 4000
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# UTF-8 text holds no surrogates: in JSON they come only from \uD800-\uDFFF escapes.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
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


def shown(value: Any) -> str:
    """``repr(value)`` for a reason or a log line, cut to a readable length."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The event times accepted: from ``earliest`` to ``latest`` (epoch seconds)."""

    earliest: float
    latest: float
    max_future_s: float  # how far ``latest`` is ahead of the wall clock, for the reason

    def check(self, value: Any, ts: float) -> float:
        """``ts`` (parsed from ``value``) if inside, else InvalidEvent saying what it looks like."""
        if self.earliest <= ts <= self.latest:
            return ts
        if ts > self.latest:
            where = f"more than {self.max_future_s:g} s ahead of the wall clock (SEGSTREAM_MAX_FUTURE_S)"
        else:
            where = f"before the earliest event time accepted, {iso(self.earliest)} (SEGSTREAM_EARLIEST_EVENT_TIME)"
        raise InvalidEvent(f"ts {shown(value)} is {iso(ts)}, {where}{self._unit_hint(value)}")

    def _unit_hint(self, value: Any) -> str:
        """Numbers that make sense in another unit: the contract's is epoch milliseconds."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ""
        for unit, per_second in (("seconds", 1.0), ("microseconds", 1e6), ("nanoseconds", 1e9)):
            if self.earliest <= value / per_second <= self.latest:
                return f"; as epoch {unit} it would be {iso(value / per_second)}: ts must be epoch milliseconds"
        return ""


def iso(ts: float) -> str:
    """Epoch seconds as ISO-8601 UTC, or words for a time no calendar holds."""
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "beyond year 9999" if ts > 0 else "before year 1"


def parse_ts(value: Any, window: TimeWindow | None = None) -> float:
    """Event time as epoch seconds from an ISO-8601 string or epoch milliseconds, inside
    ``window`` when one is given."""
    if isinstance(value, bool):
        raise InvalidEvent("ts: expected ISO-8601 string or epoch milliseconds, got a boolean")
    if isinstance(value, (int, float)):
        try:
            ts = float(value) / 1000.0
        except OverflowError as exc:
            raise InvalidEvent(f"ts: {shown(value)} is too large for a time") from exc
        if not math.isfinite(ts) or ts < 0:
            raise InvalidEvent(f"ts: epoch milliseconds must be a non-negative number, got {shown(value)}")
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (ValueError, AttributeError) as exc:
            raise InvalidEvent(f"ts: not an ISO-8601 time: {shown(value)}") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ts = moment.timestamp()
    return ts if window is None else window.check(value, ts)


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise InvalidEvent(f"value holds a number too large for a float: {shown(number)}")
    return value


def _no_constant(name: str) -> None:
    raise InvalidEvent(f"value holds {name}, which is not JSON")


def decode_json(raw: bytes | None) -> dict[str, Any]:
    """The JSON object in a message value, or InvalidEvent saying what is wrong with it: not
    UTF-8, not JSON, nested too deeply, numbers no float holds, lone surrogates in strings."""
    if raw is None:
        raise InvalidEvent("empty message value (tombstone)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"value is not UTF-8: {exc}") from exc
    try:
        doc = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"value is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidEvent("value is nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit
        raise InvalidEvent(f"value is not JSON this service can read: {shown(str(exc))}") from exc
    if not isinstance(doc, dict):
        raise InvalidEvent(f"value must be a JSON object, got {type(doc).__name__}")
    if _ESCAPED_SURROGATE.search(text):  # the only way a lone surrogate gets into a document
        _check_strings(doc)
    return doc


def _check_strings(doc: Any, path: str = "") -> None:
    """Lone surrogates (valid JSON escapes, not Unicode) cannot be stored or sent on."""
    if isinstance(doc, str):
        if _SURROGATE.search(doc):
            raise InvalidEvent(f"{path or 'value'}: holds a lone surrogate, not a Unicode character")
    elif isinstance(doc, dict):
        for key, item in doc.items():
            _check_strings(key, path)
            _check_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(doc, list):
        for item in doc:
            _check_strings(item, path)


def validate(name: str, doc: dict[str, Any]) -> None:
    """Raise InvalidEvent with the first schema violation, naming the field."""
    try:
        _validator(name)(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = exc.name.removeprefix("data").lstrip(".") or "event"
        message = exc.message.removeprefix(exc.name).strip()
        raise InvalidEvent(f"{name} schema: {where} {message}") from exc


def pseudonym(user_id: str, salt: str) -> str:
    """The id segstream keeps for ``user_id``: the id itself without a salt
    (``SEGSTREAM_USER_ID_SALT``), else HMAC-SHA256(salt, id) as 32 hex characters (128 bits)."""
    if not salt:
        return user_id
    return hmac.new(salt.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:32]


def _ident(value: Any, field_name: str) -> str:
    text = str(value).strip()
    if not text:
        raise InvalidEvent(f"{field_name}: must not be empty")
    return text


def parse_review(raw: bytes | None, window: TimeWindow | None = None) -> Review:
    doc = decode_json(raw)
    validate("review", doc)
    rating = doc.get("rating")
    return Review(
        event_id=doc["event_id"],
        user_id=_ident(doc["user_id"], "user_id"),
        item_id=_ident(doc["item_id"], "item_id"),
        text=doc["text"],
        rating=None if rating is None else float(rating),
        ts=parse_ts(doc["ts"], window),
    )


def parse_behavior(raw: bytes | None, window: TimeWindow | None = None) -> Behavior:
    doc = decode_json(raw)
    validate("behavior", doc)
    return Behavior(
        event_id=doc["event_id"],
        user_id=_ident(doc["user_id"], "user_id"),
        item_id=_ident(doc["item_id"], "item_id"),
        action=doc["action"],
        ts=parse_ts(doc["ts"], window),
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


PARSERS: dict[str, Callable[[bytes | None, TimeWindow | None], Review | Behavior]] = {
    "review": parse_review,
    "behavior": parse_behavior,
}


def _prefix(raw: bytes, limit: int) -> bytes:
    return raw if len(raw) <= limit else raw[:limit]


def _utf8(raw: bytes, cut: bool) -> str | None:
    """``raw`` as text, None when it is not UTF-8; a prefix ``cut`` through its last character
    loses that character only."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(raw) - 3 and exc.reason == "unexpected end of data":
            return raw[: exc.start].decode("utf-8")
        return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_ms(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with milliseconds, as change events write ``ts``: the one
    time format of HTTP answers (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


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
        """The record; a key or value over the bounds is cut, with its size and SHA-256."""
        error = self.error if len(self.error) <= DEAD_LETTER_ERROR_CHARS else self.error[:DEAD_LETTER_ERROR_CHARS] + "..."
        doc: dict[str, Any] = {
            "error": error,
            "source": self.source.to_doc(),
            "key": None if self.key is None else _prefix(self.key, DEAD_LETTER_KEY_BYTES).decode("utf-8", "replace"),
            "value": None,
            "value_base64": None,
            "ts": self.ts,
        }
        if self.value is not None:
            value = _prefix(self.value, DEAD_LETTER_VALUE_BYTES)
            text = _utf8(value, cut=value is not self.value)
            if text is None:
                doc["value_base64"] = base64.b64encode(value).decode("ascii")
            else:
                doc["value"] = text
            if value is not self.value:
                doc |= {"value_truncated": True, "value_bytes": len(self.value)}
                doc["value_sha256"] = hashlib.sha256(self.value).hexdigest()
        if self.key is not None and len(self.key) > DEAD_LETTER_KEY_BYTES:
            doc |= {"key_truncated": True, "key_bytes": len(self.key)}
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
    forwarded: bool = False  # came through the repartition topic; topic/partition/offset: where it first arrived

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
