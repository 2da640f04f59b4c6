"""A forwarded record is read under the position where it first arrived."""

from __future__ import annotations

from types import SimpleNamespace

from stream.contract.records import Source
from stream.worker.repartition import SOURCE_HEADER, arrived


def record(topic: str, headers: object) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=2, offset=40, key=b"u", value=b"{}", headers=headers)


def test_a_forwarded_record_keeps_its_first_position():
    message = arrived(record("app-repartition", [(SOURCE_HEADER, b"behav:iors:1:17")]), "app-repartition")
    assert message.forwarded and message.source == Source("behav:iors", 1, 17) and message.value == b"{}"
    from_dict = arrived(record("app-repartition", {SOURCE_HEADER: b"reviews:0:3"}), "app-repartition")
    assert from_dict.source == Source("reviews", 0, 3)


def test_records_not_forwarded_by_a_worker_stay_where_they_are():
    for headers in (None, [], [(SOURCE_HEADER, b"garbage")], [(SOURCE_HEADER, b"\xff:1:2")]):
        message = arrived(record("app-repartition", headers), "app-repartition")
        assert not message.forwarded and message.source == Source("app-repartition", 2, 40)
    direct = arrived(record("behaviors", [(SOURCE_HEADER, b"reviews:0:3")]), "app-repartition")
    assert not direct.forwarded and direct.source == Source("behaviors", 2, 40)
