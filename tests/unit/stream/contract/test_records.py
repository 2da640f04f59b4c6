"""The event contract: schemas, parsing, timestamps, dead-letter records."""

import base64
import json

import pytest

from stream.contract.records import (
    DeadLetter,
    InvalidEvent,
    Message,
    Source,
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
