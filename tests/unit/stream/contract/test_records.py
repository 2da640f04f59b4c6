"""The event contract: schemas, parsing, timestamps, dead-letter records."""

import base64
import hashlib
import json

import pytest

from stream.contract.records import (
    DeadLetter,
    InvalidEvent,
    Message,
    Source,
    TimeWindow,
    parse_behavior,
    parse_item,
    parse_review,
    parse_ts,
    schema,
)


def enc(doc) -> bytes:
    return json.dumps(doc).encode()


def test_review_parses_iso_and_ignores_unknown_fields():
    review = parse_review(
        enc({"event_id": "e1", "user_id": 7, "item_id": "i", "text": "good", "ts": "2024-01-02T03:04:05Z", "extra": [1]})
    )
    assert review.user_id == "7"
    assert review.rating is None
    assert review.ts == 1704164645.0


def test_epoch_milliseconds_and_naive_iso_are_utc():
    assert parse_ts(1_700_000_000_123) == pytest.approx(1_700_000_000.123)
    assert parse_ts("2024-01-02T03:04:05") == parse_ts("2024-01-02T03:04:05+00:00")


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1,2]", "JSON object"),
        (None, "tombstone"),
        (enc({"event_id": "e", "user_id": "u", "item_id": "i", "action": "like", "ts": 1}), "action"),
        (enc({"event_id": "e", "user_id": "u", "item_id": "i", "action": "view"}), "must contain \\['ts'\\]"),
        (enc({"event_id": "e", "user_id": "u", "item_id": "i", "action": "view", "ts": "yesterday"}), "ISO-8601"),
        (enc({"event_id": "e", "user_id": "u", "item_id": "i", "action": "view", "ts": True}), "ts"),
        (enc({"event_id": "", "user_id": "u", "item_id": "i", "action": "view", "ts": 1}), "event_id"),
    ],
)
def test_bad_behaviors_say_why(raw, words):
    with pytest.raises(InvalidEvent, match=words):
        parse_behavior(raw)


def test_item_text_joins_title_categories_description():
    item = parse_item(enc({"item_id": 3, "title": "Heat (1995)", "categories": ["Action", "Crime"]}))
    assert item.text() == "Heat (1995). Action, Crime"


def test_dead_letter_keeps_original_bytes():
    text = Message("reviews", 1, 5, b"u1", b'{"a":1}').dead_letter("bad").to_doc()
    assert text["value"] == '{"a":1}' and text["value_base64"] is None and text["key"] == "u1"
    binary = DeadLetter("bad", Source("reviews", 1, 5), None, b"\xff\x00").to_doc()
    assert base64.b64decode(binary["value_base64"]) == b"\xff\x00"
    assert binary["source"] == {"topic": "reviews", "partition": 1, "offset": 5} and "event" not in binary


def test_every_schema_is_valid_json_schema():
    from jsonschema import Draft202012Validator

    for name in ("review", "behavior", "item", "segment_change", "dead_letter"):
        Draft202012Validator.check_schema(schema(name))


# --- hostile values: each is a dead letter of its own, with a bounded reason ----------------


def behaviour_bytes(**fields) -> bytes:
    doc = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": 1_714_557_600_000} | fields
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"event_id": "e1", "user_id": "\\udc00", "item_id": "i", "action": "view", "ts": 1}', "user_id: holds a lone surrogate"),
        (b'{"event_id": "e1", "user_id": "u", "item_id": "i", "action": "view", "ts": ' + b"9" * 400 + b"}", "too large for a time"),
        (b'{"event_id": "e1", "user_id": "u", "item_id": "i", "action": "view", "ts": 1e400}', "too large for a float"),
        (b'{"event_id": "e1", "user_id": "u", "item_id": "i", "action": "view", "ts": Infinity}', "Infinity, which is not JSON"),
        (b'{"event_id": "e1", "user_id": "u", "item_id": "i", "action": "view", "ts": NaN}', "NaN, which is not JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"ts": ' + b"1" * 5000 + b"}", "not JSON this service can read"),
    ],
)
def test_hostile_values_are_invalid_events_with_short_reasons(raw, words):
    with pytest.raises(InvalidEvent, match=words) as caught:
        parse_behavior(raw)
    assert len(str(caught.value)) < 400


def test_a_huge_bad_value_is_quoted_briefly():
    with pytest.raises(InvalidEvent, match=r"not an ISO-8601 time: 'xxx.*\(700,002 characters\)") as caught:
        parse_behavior(behaviour_bytes(ts="x" * 700_000))
    assert len(str(caught.value)) < 300


WINDOW = TimeWindow(earliest=631_152_000.0, latest=1_764_547_200.0 + 86_400, max_future_s=86_400)  # 2025-12-01 + 1 day


@pytest.mark.parametrize(
    "ts, words",
    [
        (1_714_557_600_000_000, "more than 86400 s ahead.*as epoch microseconds it would be 2024-05-01T10:00:00"),
        (1_714_557_600, "before the earliest event time accepted, 1990-01-01.*as epoch seconds it would be 2024-05-01"),
        (10**15, "ahead of the wall clock.*as epoch microseconds it would be 2001-09-09"),
        ("9999-12-31T00:00:00Z", "is 9999-12-31T00:00:00\\+00:00, more than 86400 s ahead"),
        ("1969-07-20T20:17:00Z", "is 1969-07-20T20:17:00\\+00:00, before the earliest"),
        (-5, "must be a non-negative number"),
        ("NaN", "not an ISO-8601 time"),
        (1.7e300, "beyond year 9999"),
    ],
)
def test_event_times_outside_the_window_say_what_they_look_like(ts, words):
    with pytest.raises(InvalidEvent, match=words):
        parse_behavior(behaviour_bytes(ts=ts), WINDOW)


def test_event_times_inside_the_window_parse():
    assert parse_behavior(behaviour_bytes(ts=1_714_557_600_000), WINDOW).ts == 1_714_557_600.0
    assert parse_behavior(behaviour_bytes(ts="2024-05-01T10:00:00Z"), WINDOW).ts == 1_714_557_600.0


def test_dead_letters_are_bounded_with_size_and_digest():
    huge = b"\xff" + b"x" * 2_000_000
    letter = Message("reviews", 0, 9, b"k" * 5000, huge).dead_letter("e" * 10_000).to_doc()
    assert len(json.dumps(letter)) < 200_000
    assert letter["value_truncated"] and letter["value_bytes"] == len(huge) and letter["key_bytes"] == 5000
    assert letter["value_sha256"] == hashlib.sha256(huge).hexdigest()
    assert letter["value"] is None and base64.b64decode(letter["value_base64"]) == huge[: len(base64.b64decode(letter["value_base64"]))]
    text = Message("reviews", 0, 9, None, ("é" * 100_000).encode()).dead_letter("bad").to_doc()
    assert text["value"] and set(text["value"]) == {"é"} and text["value_truncated"]
