"""The change event: one typed record on the producing side and in the subscriber."""

import json

import pytest

from stream.contract.changes import SegmentChange
from stream.contract.records import InvalidEvent, Source


def change(user: str, segment: int, previous: int | None = None, version: int = 1, reason: str = "event") -> dict:
    return {
        "user_id": user,
        "previous_segment": previous,
        "segment": segment,
        "model_version": version,
        "distance": 0.25,
        "reason": reason,
        "mode": "live",
        "source": None,
        "ts": "2024-05-01T10:00:00.000+00:00",
    }


def test_from_json_validates_against_the_schema():
    doc = change("u1", 3, previous=1, reason="replay") | {"source": {"topic": "reviews", "partition": 2, "offset": 7}}
    parsed = SegmentChange.from_json(json.dumps(doc).encode(), snapshot=True)
    assert parsed == SegmentChange("u1", 1, 3, 1, 0.25, "replay", "live", Source("reviews", 2, 7), doc["ts"], True)
    with pytest.raises(InvalidEvent, match="not JSON"):
        SegmentChange.from_json(b"{nope")
    with pytest.raises(InvalidEvent, match="reason"):
        SegmentChange.from_json(json.dumps(change("u1", 3, reason="whim")).encode())
    with pytest.raises(InvalidEvent, match="segment"):
        SegmentChange.from_json(json.dumps({k: v for k, v in change("u1", 3).items() if k != "segment"}).encode())


def test_a_decided_change_is_published_as_the_schema_says_and_reads_back_equal():
    decided = SegmentChange.decided("u9", None, 4, 12, 0.12345678, "event", "replay", Source("behaviors", 1, 30))
    doc = json.loads(decided.to_bytes())
    assert doc["distance"] == 0.123457 and doc["source"] == {"topic": "behaviors", "partition": 1, "offset": 30}
    assert "snapshot" not in doc
    assert SegmentChange.from_json(decided.to_bytes()) == decided
