"""The subscriber client and ``segstream watch`` against the real broker."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

from kafka_io import produce

from stream.client import SegmentChange, subscribe
from stream.config import export_to_env
from stream.kafka import key_partition

ROOT = Path(__file__).resolve().parents[2]


def change(user: str, segment: int, previous: int | None = None, version: int = 1, reason: str = "event") -> dict:
    ts = "2024-05-01T10:00:00.000+00:00"
    return SegmentChange(user, previous, segment, version, 0.25, reason, "live", None, ts).to_doc()


def seen(events: list[SegmentChange]) -> list[tuple[str, int, int, bool]]:
    return [(e.user_id, e.segment, e.model_version, e.snapshot) for e in events]


def test_snapshot_then_every_change_made_meanwhile(settings_for):
    settings = settings_for()
    # not yet compacted: "a" twice, the latest last
    produce(settings, settings.topic_membership, [
        ("a", change("a", 5, version=1)), ("b", change("b", 1, version=1)),
        ("c", change("c", 2, version=1)), ("a", change("a", 0, previous=5, version=2)),
    ])
    for user, segment in [("a", 0), ("b", 1), ("c", 2)]:  # history, one record batch each
        produce(settings, settings.topic_changes, [(user, change(user, segment, version=1))])
    subscriber = subscribe(settings, from_beginning=True, stop_after_idle_s=1.5)
    # published after the start offsets were recorded, before the snapshot is read
    produce(settings, settings.topic_changes, [("a", change("a", 3, 0, version=3)), ("d", change("d", 1, version=3))])
    with subscriber:
        events = list(subscriber)
    snapshot, live = [e for e in events if e.snapshot], [e for e in events if not e.snapshot]
    assert events == snapshot + live
    assert sorted(seen(snapshot)) == [("a", 0, 2, True), ("a", 5, 1, True), ("b", 1, 1, True), ("c", 2, 1, True)]
    assert [e.segment for e in snapshot if e.user_id == "a"] == [5, 0]
    assert sorted(seen(live)) == [("a", 3, 3, False), ("d", 1, 3, False)]
    assert {e.user_id: e.segment for e in events} == {"a": 3, "b": 1, "c": 2, "d": 1}


def test_segments_filter_keeps_users_entering_and_leaving(settings_for):
    settings = settings_for()
    produce(settings, settings.topic_membership, [("m1", change("m1", 2)), ("m2", change("m2", 1, previous=0))])
    with subscribe(settings, from_beginning=True, segments=[2], stop_after_idle_s=1.5) as subscriber:
        produce(settings, settings.topic_changes, [
            ("u1", change("u1", 2)),  # enters
            ("u2", change("u2", 1, previous=0)),
            ("u3", change("u3", 4, previous=2)),  # leaves
            ("u4", change("u4", 0, previous=1)),
        ])
        events = list(subscriber)
    assert sorted((e.user_id, e.previous_segment, e.segment, e.snapshot) for e in events) == [
        ("m1", None, 2, True), ("u1", None, 2, False), ("u3", 2, 4, False),
    ]


def test_group_resumes_after_close_without_repeats(settings_for):
    settings = settings_for(session_timeout_s=2.0)  # Tansu answers a join after half of it
    produce(settings, settings.topic_membership, [("a", change("a", 0)), ("b", change("b", 1))])
    # history on a partition that gets no traffic: a restart must not read it from the beginning
    old = next(k for k in map(str, range(100)) if key_partition(k.encode(), settings.partitions) != key_partition(b"u", settings.partitions))
    produce(settings, settings.topic_changes, [(old, change(old, 0))])
    first = subscribe(settings, group_id="resume", from_beginning=True, stop_after_idle_s=10)
    # one key: one partition, so the order is the publishing order
    produce(settings, settings.topic_changes, [("u", change("u", v % 3, version=v)) for v in range(1, 5)])
    with first:
        before = list(islice(first, 4))
    assert sorted(e.user_id for e in before[:2]) == ["a", "b"] and all(e.snapshot for e in before[:2])
    assert [(e.user_id, e.model_version, e.snapshot) for e in before[2:]] == [("u", 1, False), ("u", 2, False)]

    second = subscribe(settings, group_id="resume", from_beginning=True, stop_after_idle_s=1.5)
    produce(settings, settings.topic_changes, [("u", change("u", 2, version=5))])
    with second:
        after = list(second)
    assert [(e.user_id, e.model_version, e.snapshot) for e in after] == [("u", 3, False), ("u", 4, False), ("u", 5, False)]


def test_from_now_skips_history_even_within_the_last_record_batch(settings_for):
    settings = settings_for()
    # one batch on one partition: Tansu reports its end as the batch's base offset + 1
    produce(settings, settings.topic_changes, [("h", change("h", 0, version=v)) for v in range(5)])
    with subscribe(settings, stop_after_idle_s=1.5) as subscriber:
        produce(settings, settings.topic_changes, [("h", change("h", 1, version=10)), ("n", change("n", 2, version=10))])
        events = list(subscriber)
    assert sorted(seen(events)) == [("h", 1, 10, False), ("n", 2, 10, False)]


def test_invalid_records_are_skipped_with_a_warning(settings_for, caplog):
    settings = settings_for()
    with subscribe(settings, stop_after_idle_s=1.5) as subscriber:
        produce(settings, settings.topic_changes, [
            ("u", change("u", 1, version=1)),
            ("u", b"{not json"),
            ("u", change("u", 2, version=2, reason="whim")),
            ("u", change("u", 3, version=3)),
        ])
        with caplog.at_level(logging.WARNING, logger="stream.client"):
            events = list(subscriber)
    assert [(e.segment, e.model_version) for e in events] == [(1, 1), (3, 3)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "stream.client"]
    assert len(warnings) == 2
    assert f"{settings.topic_changes}[" in warnings[0] and "@1: value is not JSON" in warnings[0]
    assert "@2: segment_change schema: reason" in warnings[1]


def test_watch_command_prints_the_snapshot(settings_for):
    settings = settings_for()
    produce(settings, settings.topic_membership, [(u, change(u, s)) for u, s in [("a", 0), ("b", 1), ("c", 2)]])
    env = {**os.environ, **export_to_env(settings)}

    def watch(*flags: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "stream.cli", "watch", "--from-beginning", *flags],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    lines = [json.loads(line) for line in watch("--json", "--limit", "3")]
    assert sorted((d["user_id"], d["segment"], d["snapshot"]) for d in lines) == [
        ("a", 0, True), ("b", 1, True), ("c", 2, True),
    ]
    assert SegmentChange.from_json(json.dumps(lines[0]).encode()).user_id == lines[0]["user_id"]
    [line] = watch("--segment", "1", "--limit", "1")
    assert "user        b" in line and "None -> 1" in line and line.endswith("[snapshot]")


def test_a_group_stopped_within_the_snapshot_resumes_it_then_follows_the_changes(settings_for):
    settings = settings_for(session_timeout_s=2.0)  # Tansu answers a join after half of it
    users = [f"s{n}" for n in range(30)]
    produce(settings, settings.topic_membership, [(u, change(u, n % 3)) for n, u in enumerate(users)])
    env = {**os.environ, **export_to_env(settings)}

    def watch(*flags: str) -> list[dict]:
        done = subprocess.run(
            [sys.executable, "-m", "stream.cli", "watch", "--group", "g", "--json", *flags],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    first = watch("--from-beginning", "--limit", "10")
    second = watch("--from-beginning", "--limit", "10")
    # meanwhile a printed user moves and a new one arrives, written as a worker writes them
    moved = first[0]["user_id"]
    meanwhile = [(moved, change(moved, 4, previous=first[0]["segment"], version=2)), ("new", change("new", 1, version=2))]
    for key, value in meanwhile:
        produce(settings, settings.topic_changes, [(key, value)])
        produce(settings, settings.topic_membership, [(key, value)])
    third = watch("--stop-after-idle", "3")
    assert all(d["snapshot"] for d in first + second + third)
    printed = [d["user_id"] for d in first + second + third]
    assert sorted(printed) == sorted(users + [moved, "new"])  # every row once, none lost
    assert {d["user_id"]: d["segment"] for d in third if d["user_id"] in (moved, "new")} == {moved: 4, "new": 1}

    # past the snapshot, the group follows the changes only
    produce(settings, settings.topic_changes, [("later", change("later", 2, version=3))])
    produce(settings, settings.topic_membership, [("later", change("later", 2, version=3))])
    fourth = watch("--from-beginning", "--stop-after-idle", "3")
    assert [(d["user_id"], d["snapshot"]) for d in fourth] == [("later", False)]
