"""Sweeps: round robin over a worker's users, bounded per version, a chunk at a time."""

import json

import numpy as np
import pytest

from stream.config import load_settings
from stream.core.catalogue import CatalogueItem
from stream.core.local_run import LocalRun
from stream.core.sweep import SweepCursor, Sweeper
from stream.core.user_state import UserState


def test_the_cursor_takes_at_most_per_version_and_lists_users_again_after_a_round():
    listed = []

    def all_ids():
        listed.append(1)
        return ["a", "b", "c", "d", "e"]

    cursor = SweepCursor(per_version=2)
    assert [cursor.next(all_ids) for _ in range(4)] == [["a", "b"], ["c", "d"], ["e"], ["a", "b"]]
    assert len(listed) == 2
    assert SweepCursor(per_version=10).next(list) == []


def seeded_run(users: int) -> LocalRun:
    """A worker whose model is seeded on two tastes, with ``users`` users in its store."""
    settings = load_settings(env={}, k=2, seed_users=2, sweep_users=7)
    items = {name: CatalogueItem(np.asarray(v, dtype=np.float32), ()) for name, v in (("x", [1, 0]), ("y", [0, 1]))}
    run = LocalRun(settings, 2, items)
    for n in range(users):
        state = UserState(f"u{n}")
        state.add_vector(items["xy"[n % 2]].vector, 1.0, 0.0, 1.0)
        run.users.put_many([state])
    update = run.segmentation.new_update()
    for user_id in run.users.user_ids():
        update.stats.observe(user_id, run.users.get(user_id).vector, None)
    run.owner.receive(update, 0)
    run.pipeline.segmentation.adopt(run.owner.segmentation)
    return run


def test_chunks_cover_the_users_due_and_final_covers_everyone():
    run = seeded_run(users=20)
    sweeper = Sweeper(run.pipeline, run.users, per_version=7, chunk=3)
    chunks = list(sweeper.chunks())
    assert [c.swept for c in chunks] == [3, 3, 1]
    changes = [c for chunk in chunks for c in chunk.changes]
    assert len(changes) == 7 and all(c.reason == "model_update" and c.mode == "live" for c in changes)
    assert sum(c.swept for c in sweeper.chunks()) == 7  # the next seven
    final = list(sweeper.chunks(mode="replay", final=True))
    assert sum(c.swept for c in final) == 20
    replayed = [c for chunk in final for c in chunk.changes]
    # a final membership: every user, even one whose segment did not change
    assert len(replayed) == 20 and all(c.reason == "replay" and c.mode == "replay" for c in replayed)


def test_a_chunk_reads_its_users_when_its_turn_comes():
    run = seeded_run(users=6)
    chunks = Sweeper(run.pipeline, run.users, per_version=6, chunk=3).chunks()
    first = next(chunks)
    run.users.put_many(first.states.values())
    late = run.users.get("u5")
    late.segment = 1 - first.states["u1"].segment  # written meanwhile (a batch applied in between)
    run.users.put_many([late])
    change = next(c for c in next(chunks).changes if c.user_id == "u5")
    assert change.previous_segment == late.segment and change.segment == first.states["u1"].segment


def test_nothing_is_swept_before_the_model_is_seeded():
    settings = load_settings(env={}, k=2, seed_users=2)
    run = LocalRun(settings, 2, {})
    run.users.put_many([UserState("u0")])
    assert [c.swept for c in Sweeper(run.pipeline, run.users, 5).chunks()] == [1]
    assert not any(c.changes for c in Sweeper(run.pipeline, run.users, 5).chunks())


def test_users_handed_to_another_worker_between_chunks_are_not_swept():
    run = seeded_run(users=6)
    held = {f"u{n}" for n in range(6)}
    run.users.held = lambda ids: [u for u in ids if u in held]  # the worker's partitions, as a rebalance changes them
    chunks = Sweeper(run.pipeline, run.users, per_version=6, chunk=3).chunks(final=True)
    assert set(next(chunks).states) == {"u0", "u1", "u2"}
    held -= {"u4", "u5"}  # revoked between two chunks: their rows are the new holder's to write
    assert set(next(chunks).states) == {"u3"}


def test_events_before_a_users_first_segment_come_with_them_and_every_event_counts_once():
    from stream.contract.records import Message

    settings = load_settings(env={}, k=2, seed_users=4)
    items = {name: CatalogueItem(np.asarray(v, dtype=np.float32), ()) for name, v in (("x", [1, 0]), ("y", [0, 1]))}
    run = LocalRun(settings, 2, items)

    def event(n: int) -> Message:
        doc = {"event_id": f"e{n}", "user_id": f"u{n % 6}", "item_id": "xy"[n % 2], "action": "view", "ts": 1_700_000_000_000 + n}
        return Message(settings.topic_behaviors, 0, n, None, json.dumps(doc).encode())

    run.apply([event(n) for n in range(3)])  # before the seed: in the users' own counts only
    assert run.users.get("u0").member_counts.totals.behaviours == 1.0
    for start in range(3, 60, 6):
        run.batch([event(n) for n in range(start, start + 6)])
    assert run.segmentation.model.seeded
    segments = run.segmentation.profiles.to_doc()["segments"]
    # users moved between segments on the way: what one segment lost, the other gained
    assert sum(s["behaviours"] for s in segments) == pytest.approx(63, rel=1e-6)  # events 0..62
    view = settings.action_weights["view"]
    assert sum(sum(s["items"].values()) for s in segments) == pytest.approx(63 * view, rel=1e-6)
