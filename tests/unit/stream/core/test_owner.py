"""The model owner: learns each update once, publishes after changes at most once per interval
(at once for a rebuild), and its snapshot is what the workers adopt."""

import numpy as np
import pytest

from models.segmentation import Segmentation
from stream.config import load_settings
from stream.core.owner import ModelOwner, RefusedUpdate
from stream.factories import new_segmentation, segmentation_params

SETTINGS = load_settings(env={}, k=2, seed_users=3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def update_with(segmentation: Segmentation, users: dict[str, list[float]]):
    update = segmentation.new_update()
    for user, vector in users.items():
        update.stats.observe(user, np.asarray(vector, dtype=np.float32), None)
    return update


def test_each_update_is_learned_once_by_offset():
    owner = ModelOwner(new_segmentation(SETTINGS, 2), publish_interval_s=1.0, clock=Clock())
    first = update_with(owner.segmentation, {"a": [1, 0], "b": [0, 1]})
    assert owner.receive(first, 0) and owner.dirty
    assert not owner.receive(first, 0)  # a redelivery
    assert owner.segmentation.model.updates_offset == 0 and len(owner.segmentation.model.reservoir) == 2
    assert owner.receive(update_with(owner.segmentation, {"c": [1, 1]}), 5)
    assert owner.segmentation.model.seeded and owner.segmentation.version == 1  # seed_users reached


def test_publishes_after_changes_at_most_once_per_interval_and_at_once_for_a_rebuild():
    clock = Clock()
    owner = ModelOwner(new_segmentation(SETTINGS, 2), publish_interval_s=1.0, clock=clock)
    update = update_with(owner.segmentation, {"a": [1, 0]})
    assert not owner.publish_due(update) and owner.snapshot() is None  # nothing learned yet
    owner.receive(update, 0)
    assert owner.publish_due(update)
    assert owner.snapshot() is not None and not owner.dirty and owner.snapshot() is None
    clock.now += 0.5
    later = update_with(owner.segmentation, {"b": [0, 1]})
    owner.receive(later, 1)
    assert not owner.publish_due(later)  # within the interval
    rebuild = owner.segmentation.new_update()
    rebuild.stats.rebuild = "canonical"
    owner.receive(rebuild, 2)
    assert owner.publish_due(rebuild)  # a replay waits for it
    clock.now += 0.5
    assert owner.publish_due(later)


def test_the_snapshot_is_the_segmentation_a_worker_reads_back():
    owner = ModelOwner(new_segmentation(SETTINGS, 2), publish_interval_s=0.0)
    owner.receive(update_with(owner.segmentation, {"a": [1, 0], "b": [0, 1], "c": [0.9, 0.1]}), 0)
    published = Segmentation.from_bytes(owner.snapshot(), segmentation_params(SETTINGS), 2)
    np.testing.assert_array_equal(published.model.centroids, owner.segmentation.model.centroids)
    worker = new_segmentation(SETTINGS, 2)
    assert worker.adopt(published) and worker.version == 1 and worker.model.updates_offset == 0
    assert not worker.adopt(published)  # nothing newer


def test_with_few_users_the_owner_seeds_once_the_input_went_quiet():
    clock = Clock()
    owner = ModelOwner(new_segmentation(load_settings(env={}, k=2), 2), 1.0, seed_idle_s=10.0, clock=clock)
    owner.receive(update_with(owner.segmentation, {"a": [1, 0]}), 0)
    clock.now += 60
    assert not owner.tick()  # fewer users than k
    owner.receive(update_with(owner.segmentation, {"b": [0, 1], "c": [0.1, 1]}), 1)
    clock.now += 9
    assert not owner.tick() and not owner.segmentation.model.seeded
    clock.now += 2
    assert owner.tick() and owner.segmentation.model.seeded and owner.dirty
    assert owner.segmentation.model.history[-1] == owner.segmentation.model.history[-1] | {"event": "seed", "users": 3}
    assert not owner.tick()  # once


def test_a_dead_centroid_is_refreshed_once_the_input_went_quiet():
    """A backlog worked off, then silence: the updates that would make a refresh due are not
    coming, and a segment no user is nearest to would stay empty."""
    clock = Clock()
    owner = ModelOwner(new_segmentation(load_settings(env={}, k=2, seed_users=4), 2), 1.0, seed_idle_s=10.0, clock=clock)
    owner.receive(update_with(owner.segmentation, {"a": [1, 0], "b": [0.9, 0.1], "c": [0, 1], "d": [0.1, 0.9]}), 0)
    model = owner.segmentation.model
    model.centroids[1] = [-1.0, -1.0]  # drifted where no user is
    model.updates_since_refresh = 1
    clock.now += 9
    assert not owner.tick()
    clock.now += 2
    assert owner.tick() and model.history[-1]["reseeded_empty"] == [1] and model.empty_segments() == []
    assert not owner.tick()  # alive again: nothing to do


def test_a_quiet_owner_refreshes_on_what_came_since_its_last_refresh_once():
    clock = Clock()
    settings = load_settings(env={}, k=2, seed_users=4, refresh_every=100)
    owner = ModelOwner(new_segmentation(settings, 2), 1.0, seed_idle_s=10.0, clock=clock)
    owner.receive(update_with(owner.segmentation, {"a": [1, 0], "b": [0.9, 0.1], "c": [0, 1], "d": [0.1, 0.9]}), 0)
    model = owner.segmentation.model
    model.updates_since_refresh = 9  # under a tenth of refresh_every: not worth a version
    clock.now += 11
    assert not owner.tick()
    model.updates_since_refresh = 10
    assert owner.tick() and model.history[-1]["event"] == "refresh" and model.updates_since_refresh == 0
    assert not owner.tick()


def test_an_update_that_would_make_the_model_non_finite_is_refused():
    owner = ModelOwner(new_segmentation(SETTINGS, 2), publish_interval_s=1.0, clock=Clock())
    for bad in ([np.nan, 0.0], [np.inf, 1.0], [0.0, 0.0]):
        with pytest.raises(RefusedUpdate, match="not finite or is zero"):
            owner.receive(update_with(owner.segmentation, {"a": bad}), 0)
    profiles = owner.segmentation.new_update()
    profiles.profiles.add_action(0, "i", (), "view", 1.0, 0.0)
    profiles.profiles._segments[0].items["i"] = float("nan")
    with pytest.raises(RefusedUpdate, match="profile counts"):
        owner.receive(profiles, 0)
    assert owner.segmentation.model.updates_offset == -1 and not owner.dirty
