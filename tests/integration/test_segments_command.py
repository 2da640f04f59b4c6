"""``segstream segments`` against a real worker after a small MovieLens load (k=3): the table,
one segment's portrait, --json, and a --segment out of range; the HTTP answers it reads carry
item titles and ISO-8601 UTC times."""

from __future__ import annotations

import json
import re
import subprocess

from kafka_io import cli, load_movielens_slice

from stream.datasets import movielens

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def segments_command(settings, *args: str) -> subprocess.CompletedProcess:
    return cli(settings, "segments", *args)


def test_segments_table_portrait_and_json_from_a_running_worker(settings_for, start_worker):
    settings = settings_for(k=3, seed_users=20, http_token="segments-secret")
    worker = start_worker(settings)
    ratings = load_movielens_slice(settings, worker)
    titles = {m.item_id: movielens.item_event(m)["title"] for m in movielens.movies()[:80]}

    overview = worker.get("/segments")[1]
    assert overview["seeded"] and all(ISO_UTC.match(e["ts"]) for e in overview["model_events"])
    assert ISO_UTC.match(worker.get(f"/users/{ratings[0].user_id}")[1]["last_event_ts"])

    listed = segments_command(settings, "--json")
    assert listed.returncode == 0, listed.stderr
    answer = json.loads(listed.stdout)
    portraits = answer["segments"]
    assert [p["segment"] for p in portraits] == [0, 1, 2]
    assert sum(p["size"] for p in portraits) == sum(s["size"] for s in overview["segments"])
    assert abs(sum(p["share"] for p in portraits) - 1.0) < 1e-9
    items = [i for p in portraits for i in p["top_items"]]
    assert items and all(i["title"] == titles[i["item_id"]] for i in items)
    assert all(c["lift"] > 0 and 0 < c["share"] <= 1 for p in portraits for c in p["top_categories"])

    table = segments_command(settings)
    assert table.returncode == 0, table.stderr
    biggest = max(portraits, key=lambda p: p["size"])
    assert f"model v{answer['model_version']}" in table.stdout
    assert biggest["top_items"][0]["title"][:12] in table.stdout
    assert f"{biggest['top_categories'][0]['category']} {biggest['top_categories'][0]['lift']:.1f}×" in table.stdout

    one = segments_command(settings, "--segment", "1")
    assert one.returncode == 0, one.stderr
    assert f"segment 1: {portraits[1]['label']}" in one.stdout
    assert "categories" in one.stdout and "actions" in one.stdout
    one_json = json.loads(segments_command(settings, "--segment", "1", "--json").stdout)
    assert one_json["segment"] == 1 and one_json["label"] == portraits[1]["label"]
    assert "weight" in one_json["detail"]

    wrong = segments_command(settings, "--segment", "3")
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert wrong.stderr.strip().splitlines() == [
        "segstream segments: error: --segment 3 is out of range: the worker's segments are 0..2"
    ]
