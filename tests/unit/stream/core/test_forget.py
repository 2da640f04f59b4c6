"""Forgetting a user in the core, and pseudonymous user ids: no Kafka."""

from __future__ import annotations

import json

import numpy as np

from models.centroid_stats import CentroidStats
from models.segmentation import Segmentation
from stream.config import load_settings
from stream.contract.changes import SegmentChange
from stream.contract.records import Message, pseudonym
from stream.core.catalogue import CatalogueItem
from stream.core.local_run import LocalRun

T0_MS = 1_600_000_000_000


def unit(*xs: float) -> np.ndarray:
    return (np.asarray(xs, dtype=np.float32) / np.linalg.norm(xs)).astype(np.float32)


ITEMS = {
    "a": CatalogueItem(unit(1, 0, 0), ("Action",)),
    "b": CatalogueItem(unit(0, 0, 1), ("Romance",)),
}


def run(seed_users: int = 4, **settings: object) -> LocalRun:
    return LocalRun(load_settings(env={}, k=2, seed_users=seed_users, **settings), 3, ITEMS)


def events(local: LocalRun, users: dict[str, str], offset: int = 0) -> list[Message]:
    topic = local.pipeline.settings.topic_behaviors
    return [
        Message(topic, 0, offset + n, user.encode(), json.dumps(
            {"event_id": f"{user}-{offset + n}", "user_id": user, "item_id": item, "action": "view", "ts": T0_MS}
        ).encode())
        for n, (user, item) in enumerate(users.items())
    ]


def forget(local: LocalRun, *user_ids: str):
    """What the worker does: the pipeline's part, the rows, the owner's update."""
    result = local.pipeline.forget(user_ids, local.users)
    local.users.delete_many(user_ids)
    local.submit(result.update, result)
    return result


def test_a_forgotten_user_leaves_the_rows_the_census_and_the_owners_reservoir():
    local = run()
    local.batch(events(local, {"u1": "a", "u2": "a", "u3": "b", "u4": "b"}))
    assert local.segmentation.model.seeded and "u1" in local.segmentation.model.reservoir
    segment = local.users.get("u1").segment
    sizes_before = local.pipeline.census.counts[0].copy()
    result = forget(local, "u1", "nobody")
    assert result.changes == [SegmentChange("u1", segment, None, local.pipeline.segmentation.version, None,
                                            "forgotten", "live", None, result.changes[0].ts)]
    assert local.users.get("u1") is None
    assert "u1" not in local.segmentation.model.reservoir and "u1" not in local.segmentation.model.assigned
    assert local.pipeline.census.counts[0][segment] == sizes_before[segment] - 1
    assert local.segmentation.model.sizes.sum() == 3  # the owner's sizes follow the census


def test_forgetting_before_the_seed_drops_the_waiting_vector_and_held_behaviours():
    local = run(seed_users=10)
    local.batch(events(local, {"u1": "a", "u2": "b"}))
    local.batch(events(local, {"u1": "missing-item"}, offset=2))  # held for an unknown item
    assert "u1" in local.pipeline.waiting.held and not local.users.get("u1").member_counts.empty
    result = forget(local, "u1")
    assert [(c.user_id, c.previous_segment, c.segment) for c in result.changes] == [("u1", None, None)]
    assert "u1" not in local.pipeline.waiting.held and local.users.get("u1") is None  # their counts went with the row
    published = Segmentation.from_bytes(local.owner.segmentation.to_bytes(), local.params, 3)
    assert list(published.model.reservoir) == ["u2"]  # the unseeded model publishes its reservoir


def test_forget_requests_travel_in_the_update():
    stats = CentroidStats(2, 3)
    stats.forget.append("u1")
    assert stats and CentroidStats.from_doc(json.loads(json.dumps(stats.to_doc()))).forget == ["u1"]


def test_a_forgotten_change_follows_the_contract():
    change = SegmentChange.forgotten("u1", 3, 7)
    back = SegmentChange.from_json(change.to_bytes())
    assert (back.segment, back.distance, back.reason, back.previous_segment) == (None, None, "forgotten", 3)


def test_salted_ids_are_hashed_before_anything_is_stored():
    local = run(user_id_salt="s3cret")
    result = local.batch(events(local, {"alice": "a", "bob": "a", "carol": "b", "dave": "b"}))
    hashed = pseudonym("alice", "s3cret")
    assert len(hashed) == 32 and hashed != pseudonym("alice", "other") and pseudonym("alice", "") == "alice"
    assert set(local.users.rows) == {pseudonym(u, "s3cret") for u in ("alice", "bob", "carol", "dave")}
    assert all("alice" not in c.to_bytes().decode() for c in result.changes)
    assert "alice" not in local.owner.segmentation.to_bytes().decode()
    assert result.dead_letters == []  # the key (the id as sent) was checked before hashing
