"""Privacy and access against the real broker and a real worker: where the HTTP server listens,
the bearer token, pseudonymous ids, and forgetting a user (CLI and HTTP) end to end."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from confluent_kafka import TopicPartition
from kafka_io import drain, produce

from models.segmentation import Segmentation
from stream.client import subscribe
from stream.config import export_to_env
from stream.contract.records import pseudonym
from stream.datasets import movielens
from stream.factories import segmentation_params
from stream.kafka import cluster_config, consumer, read_last_value, read_until_quiet, user_partition
from stream.tools.broker import free_port
from stream.tools.launcher import eventually

TOKEN = "s3cret-token"
SALT = "pepper"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (IPv4 and IPv6), from /proc."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def status_of(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def records(settings, topic: str) -> list:
    """Every record of every partition of ``topic``, in offset order per partition."""
    reader = consumer(cluster_config(settings), "privacy-test-partitions")
    partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
    reader.close()
    return list(read_until_quiet(cluster_config(settings), [TopicPartition(topic, p, 0) for p in partitions], 2.0))


def latest_by_key(settings, topic: str) -> dict[str, bytes | None]:
    """Each key's newest value on ``topic`` (None: a tombstone)."""
    return {m.key().decode(): m.value() for m in records(settings, topic)}


def published_reservoir(settings, dim: int) -> set[str]:
    raw = read_last_value(cluster_config(settings), settings.topic_model)
    return set() if raw is None else set(Segmentation.from_bytes(raw, segmentation_params(settings), dim).model.reservoir)


def test_the_worker_listens_where_told_and_asks_for_its_token(settings_for, start_worker):
    settings = settings_for(http_token=TOKEN)
    worker = start_worker(settings)  # the launcher sends the token: it reaches /healthz
    assert listening_addresses(settings.web_port) == {"0100007F"}  # 127.0.0.1 only, no 0.0.0.0 nor ::
    for page in ("/healthz", "/segments", "/segments/0", "/users/u1", "/users/u1/recommendations", "/nowhere"):
        assert status_of(worker.url + page) == 401, page
        assert status_of(worker.url + page, "wrong") == 401, page
    assert status_of(worker.url + "/segments", TOKEN) == 200
    for page in ("/livez", "/readyz", "/metrics"):  # probes and metrics stay open
        assert status_of(worker.url + page) != 401, page


def test_forgotten_users_are_gone_from_every_store_and_topic(settings_for, start_worker, tmp_path):
    settings = settings_for(user_id_salt=SALT, seed_idle_s=3600.0, http_token=TOKEN)  # unseeded: the reservoir is published
    worker = start_worker(settings)
    movies = movielens.movies()[:4]
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movies])
    worker.wait_until(lambda h: h["catalogue_items"] == 4, 120, "the catalogue")
    events = [
        (user, {"event_id": f"{user}-{n}", "user_id": user, "item_id": movies[(u + n) % 4].item_id,
                "action": "view", "ts": 1_700_000_000_000 + n * 60_000})
        for u, user in enumerate(USERS) for n in range(2)
    ]
    produce(settings, settings.topic_behaviors, events)
    worker.wait_until(lambda h: h["counters"]["applied"] == len(events), 60, "the events")
    stored = {user: pseudonym(user, SALT) for user in USERS}
    dim = worker.health()["encoder"]["dim"]
    eventually(lambda: published_reservoir(settings, dim), lambda r: r == set(stored.values()), 30)
    assert published_reservoir(settings, dim) == set(stored.values())  # pseudonyms only
    assert worker.get("/users/alice")[0] == 200 and worker.get("/users/alice")[1]["user_id"] == stored["alice"]

    subscriber = subscribe(settings, stop_after_idle_s=3.0)  # from the changes' current end
    # alice through the CLI (a request on the forget topic), bob through the HTTP API.
    cli = subprocess.run(
        [sys.executable, "-m", "stream.cli", "forget", "alice"],
        env={**os.environ, **export_to_env(settings)}, capture_output=True, text=True, timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert worker.delete("/users/bob") == (200, {"user_id": stored["bob"], "forgotten": True, "found": True})

    assert eventually(lambda: worker.get("/users/alice")[0], lambda s: s == 404, 30) == 404
    assert worker.get("/users/bob")[0] == 404 and worker.get("/users/carol")[0] == 200
    gone = {stored["alice"], stored["bob"]}
    forgotten = eventually(
        lambda: {k for k, v in drain(settings, settings.topic_changes) if v["reason"] == "forgotten"},
        lambda found: found == gone, 30,
    )
    assert forgotten == gone
    with subscriber:  # the client API reads them
        read = [(c.user_id, c.reason, c.previous_segment, c.segment, c.distance) for c in subscriber]
    assert sorted(read) == sorted((user, "forgotten", None, None, None) for user in gone)
    membership = latest_by_key(settings, settings.topic_membership)
    assert membership[stored["alice"]] is None and membership[stored["bob"]] is None  # tombstones
    reservoir = eventually(lambda: published_reservoir(settings, dim), lambda r: not r & gone, 30)
    assert reservoir == set(stored.values()) - gone
    for topic in (settings.topic_changes, settings.topic_membership, settings.topic_model, settings.topic_model_updates):
        values = b"".join((m.key() or b"") + (m.value() or b"") for m in records(settings, topic))
        assert b"alice" not in values and b"bob" not in values, topic  # the raw ids never left ingestion
    assert status_of(f"{worker.url}/table/users/{stored['carol']}/", TOKEN) == 404  # Faust's raw-row view is off


def test_forget_reaches_the_worker_holding_each_user(settings_for, start_worker, tmp_path):
    settings = settings_for()
    workers = [start_worker(settings), start_worker(dataclasses.replace(settings, web_port=free_port(), data_dir=str(tmp_path / "b")))]
    for worker in workers:
        worker.wait_until(lambda h: bool(h["input_partitions"]), 60, "partitions for both workers")
    movie = movielens.movies()[0]
    produce(settings, settings.topic_items, [(movie.item_id, movielens.item_event(movie))])
    users = [f"user-{n}" for n in range(12)]
    events = [(u, {"event_id": u, "user_id": u, "item_id": movie.item_id, "action": "view", "ts": 1_700_000_000_000}) for u in users]
    produce(settings, settings.topic_behaviors, events)
    eventually(lambda: sum(w.health()["counters"]["applied"] for w in workers), lambda n: n == len(users), 60)
    second = {int(tp.rsplit(":", 1)[1]) for tp in workers[1].health()["input_partitions"]}
    remote = next(u for u in users if user_partition(u, settings.partitions) in second)
    assert workers[0].delete(f"/users/{remote}")[1]["found"]  # routed to the second worker
    cli = subprocess.run(
        [sys.executable, "-m", "stream.cli", "forget", *users],
        env={**os.environ, **export_to_env(settings)}, capture_output=True, text=True, timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    statuses = eventually(lambda: {u: workers[0].get(f"/users/{u}")[0] for u in users}, lambda s: set(s.values()) == {404}, 30)
    assert set(statuses.values()) == {404}
    forgotten = Counter(k for k, v in drain(settings, settings.topic_changes) if v["reason"] == "forgotten")
    assert forgotten == Counter(users)  # once each: the second request for `remote` found no row
