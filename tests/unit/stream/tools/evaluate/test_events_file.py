"""Reading a file of contract events, labels, held-out items, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.tools.evaluate import events_file, report


def test_event_kind():
    assert events_file.event_kind({"item_id": "i", "title": "T"}) == "item"
    assert events_file.event_kind({"user_id": "u", "item_id": "i", "text": "t"}) == "review"
    assert events_file.event_kind({"user_id": "u", "item_id": "i", "action": "view"}) == "behavior"
    assert events_file.event_kind({"user_id": "u"}) is None
    assert events_file.event_kind([1, 2]) is None


def test_read_events_labels_heldout_and_k_range(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"item_id": "i1", "title": "One"}),
                json.dumps({"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": 1}),
                "",
                "not json",
                json.dumps({"event_id": "e2", "user_id": "u2", "item_id": "i1", "text": "nice", "ts": 2}),
                json.dumps({"what": 1}),
                json.dumps({"event_id": "e3", "user_id": "u1", "item_id": "i1", "action": "cart", "ts": 3}),
            ]
        )
        + "\n"
    )
    file = events_file.read_events(path)
    assert file.counts() == {"items": 1, "reviews": 1, "behaviors": 2, "users": 2, "not_json": 1, "unrecognised": 1}
    assert [(s.line_no, s.kind, s.key) for s in file.stream] == [(2, "behavior", b"u1"), (5, "review", b"u2"), (7, "behavior", b"u1")]
    assert file.users == ["u1", "u2"]
    (tmp_path / "labels.csv").write_text("user_id,label\nu1,x\nu2,y\n")
    assert events_file.read_labels(tmp_path / "labels.csv") == {"u1": "x", "u2": "y"}
    (tmp_path / "held.csv").write_text("user_id,item_id\nu1,i2\nu1,i3\n")
    assert events_file.read_heldout(tmp_path / "held.csv") == {"u1": ["i2", "i3"]}
    assert events_file.parse_k_range("3..5") == [3, 4, 5]
    for bad in ("5..3", "0..2", "3-5"):
        with pytest.raises(ValueError):
            events_file.parse_k_range(bad)
    assert report.seed_users_for(200, 60)[0] == 60 and report.seed_users_for(200, 500)[0] == 200


def test_cli_parses_evaluate():
    from stream.cli import build_parser, cmd_evaluate

    args = build_parser().parse_args(["evaluate", "x.jsonl", "--k-range", "2..4", "--orders", "3", "--json"])
    assert args.func is cmd_evaluate and args.k_range == "2..4" and args.orders == 3 and args.json
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "x.jsonl", "--k", "3", "--k-range", "2..4"])
