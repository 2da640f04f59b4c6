"""Two worker processes on the real broker with the real model, fed by a producer that is not
ours (confluent-kafka's default partitioner, CRC32, and some null keys): every user's counts
are exact, both workers hold the whole catalogue, and the published sizes match the users'
rows, through a model owner killed mid-stream and a worker joining again."""

from __future__ import annotations

import dataclasses
from collections import Counter

from kafka_io import drain, produce

from stream.datasets import movielens
from stream.tools import loss_report
from stream.tools.broker import free_port
from stream.tools.launcher import WorkerProcess, eventually

RATINGS = 6000
NULL_KEY_EVERY = 7
LIBRDKAFKA_DEFAULT = {"partitioner": "consistent_random"}  # CRC32 of the key, what kcat uses too


def keyed(n: int, event: dict) -> tuple[str | None, dict]:
    return (None if n % NULL_KEY_EVERY == 0 else event["user_id"]), event


def actions_of(worker: WorkerProcess, users: list[str]) -> dict[str, int]:
    """Each user's applied behaviours, from the worker that holds the user (table routing)."""
    out = {}
    for user in users:
        status, view = worker.get(f"/users/{user}")
        out[user] = sum(view["actions"].values()) if status == 200 else 0
    return out


def figures(workers: list[WorkerProcess], sent: Counter, segmented: int) -> dict:
    counted = actions_of(workers[0], sorted(sent))
    healths = [w.health() for w in workers]
    sizes = workers[0].get("/segments")[1]["segments"]
    return {
        "sent": sum(sent.values()),
        "counted": sum(counted.values()),
        "users_exact": sum(counted[u] == n for u, n in sent.items()),
        "users": len(sent),
        "pending": sum(h["held_behaviours"]["behaviours"] for h in healths),
        "dead_letters": sum(h["counters"]["dead_letters"] for h in healths),
        "catalogue": [h["catalogue_items"] for h in healths],
        "sizes_sum": sum(s["size"] for s in sizes),
        "segmented_rows": segmented,
    }


def test_any_partitioner_whole_catalogue_true_sizes_through_an_owner_kill(settings_for, start_worker, tmp_path):
    settings = settings_for(k=4, seed_users=40)
    second_settings = dataclasses.replace(settings, web_port=free_port(), data_dir=str(tmp_path / "second"))
    workers = [start_worker(settings), start_worker(second_settings)]
    eventually(lambda: [w.health()["input_partitions"] for w in workers], lambda parts: all(parts), 60)

    movies = movielens.movies()
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movies], **LIBRDKAFKA_DEFAULT)
    for worker in workers:  # each holds the whole catalogue, whichever partitions it encoded
        try:
            worker.wait_until(lambda h: h["catalogue_items"] == len(movies), 120, "the whole catalogue in every worker")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{loss_report.item_vectors(settings)}") from exc

    events = [movielens.behavior_event(r) for r in movielens.ratings()[:RATINGS]]
    sent = Counter(e["user_id"] for e in events)
    third = len(events) // 3
    produce(settings, settings.topic_behaviors, [keyed(n, e) for n, e in enumerate(events[:third])], **LIBRDKAFKA_DEFAULT)

    # The model owner is killed mid-stream; the other worker takes the model over.
    owner = next(w for w in workers if w.health()["model"]["owner"])
    survivor = next(w for w in workers if w is not owner)
    survivor.wait_until(lambda h: h["counters"]["applied"] > 0, 60, "the first events")
    owner.stop(kill=True)
    produce(settings, settings.topic_behaviors, [keyed(n, e) for n, e in enumerate(events[third:2 * third], third)], **LIBRDKAFKA_DEFAULT)
    survivor.wait_until(lambda h: h["model"]["owner"], 60, "the survivor to own the model")

    # The killed worker comes back: partitions are split again (a rebalance mid-stream), while
    # the survivor sweeps its users over each new version.
    swept_before = survivor.health()["counters"]["swept"]
    back = start_worker(owner.settings)
    workers = [survivor, back]
    eventually(lambda: [w.health()["input_partitions"] for w in workers], lambda parts: all(parts), 60)
    assert survivor.health()["counters"]["swept"] > swept_before
    produce(settings, settings.topic_behaviors, [keyed(n, e) for n, e in enumerate(events[2 * third:], 2 * third)], **LIBRDKAFKA_DEFAULT)

    counted = eventually(lambda: actions_of(survivor, sorted(sent)), lambda c: c == dict(sent), 180)
    wrong = [u for u, n in sent.items() if counted[u] != n]
    assert not wrong, loss_report.user_rows(settings, wrong)  # every event applied once, whatever partition it came on
    rows = {u: survivor.get(f"/users/{u}")[1] for u in sent}
    segmented = sum(view["segment"] is not None for view in rows.values())

    def sizes_sum() -> int:
        return sum(s["size"] for s in survivor.get("/segments")[1]["segments"])

    eventually(sizes_sum, lambda total: total == segmented, 60)
    seen = figures(workers, sent, segmented)
    print("two workers:", seen)
    assert seen["pending"] == 0 and seen["dead_letters"] == 0
    assert seen["catalogue"] == [len(movies), len(movies)]
    assert segmented == len(sent) and seen["sizes_sum"] == segmented
    # Subscribers know every user (a SIGKILL in the middle of a sweep can leave a user's latest
    # membership record apart from the row until the user's next change: README, known limits).
    assert {key for key, _ in drain(settings, settings.topic_membership)} >= set(sent)
    forwarded = sum(w.health()["counters"]["forwarded"] for w in workers)
    assert forwarded > 0  # the CRC32 and null-key events did go round through the repartition topic
