"""Streaming k-means with one writer: seeding, mini-batch steps, refreshes with stable ids,
hysteresis, rebuilds, and the statistics workers send the owner."""

import numpy as np

from models.centroid_stats import CentroidStats
from models.clustering import KMeansParams, StreamingKMeans, match_ids, nearest
from models.profiles import ProfileParams
from models.segmentation import SegmentationParams
from stream.config import load_settings
from stream.core.local_run import LocalRun
from stream.core.pipeline import BatchResult
from stream.core.user_state import UserState


def blobs(rng, n_per, centers, spread=0.05):
    pts = [c + spread * rng.standard_normal((n_per, len(c))) for c in centers]
    x = np.concatenate(pts).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def model_of(k: int, dim: int, **params) -> StreamingKMeans:
    return StreamingKMeans(KMeansParams(k=k, **{"seed_users": k, **params}), dim)


class World:
    """Users with given vectors, held by one worker, and the model's owner, through the core's
    model loop (LocalRun): each step is one worker batch (assigned with the worker's copy),
    learned by the owner, published, adopted, and every user swept when the version moved."""

    def __init__(self, k: int, dim: int, **params) -> None:
        settings = load_settings(env={}, k=k, sweep_users=1_000_000)
        kmeans = KMeansParams(k=k, **params)
        self.run = LocalRun(settings, dim, {}, params=SegmentationParams(kmeans, ProfileParams(k, 86_400.0)))

    @property
    def model(self) -> StreamingKMeans:
        return self.run.segmentation.model

    @property
    def segment(self) -> dict[str, int | None]:
        return {u: self.run.users.get(u).segment for u in self.run.users.user_ids()}

    def batch(self, updates: dict[str, np.ndarray]) -> None:
        states = []
        for user, vector in updates.items():
            state = self.run.users.get(user) or UserState(user)
            state.vector_sum, state.weight = np.asarray(vector, dtype=np.float32), 1.0
            states.append(state)
        update = self.run.pipeline.segmentation.new_update()
        result = BatchResult(changes=self.run.pipeline.assign(((s, None) for s in states), update))
        self.run.users.put_many(states)
        self.run.submit(update if update else None, result)


def world_on(x, k, **kw) -> World:
    world = World(k, x.shape[1], seed_users=len(x), **kw)
    world.batch({f"u{i}": v for i, v in enumerate(x)})
    return world


def test_seeding_recovers_well_separated_groups_and_sizes_follow_the_sweep():
    rng = np.random.default_rng(1)
    x = blobs(rng, 20, np.eye(4, 16) * 5)
    world = world_on(x, 4)
    model = world.model
    assert model.seeded and model.version == 1 and model.history[-1]["event"] == "seed"
    segment = world.segment
    groups = [{segment[f"u{i}"] for i in range(g * 20, g * 20 + 20)} for g in range(4)]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 4
    assert model.sizes.tolist() == [20, 20, 20, 20]


def test_a_census_alone_makes_no_new_version_and_sizes_sum_the_latest_census_of_each_partition():
    model = model_of(2, 2)
    model.centroids = np.eye(2)
    stats = model.new_stats()
    stats.census = {0: np.array([0, 1]), 3: np.array([2, 2])}
    assert not model.learn(stats) and model.version == 0 and model.sizes.tolist() == [2, 3]
    again = model.new_stats()  # partition 3 counted again (a lost or repeated update changes nothing)
    again.census = {3: np.array([1, 0])}
    model.learn(again)
    model.learn(again)
    assert model.sizes.tolist() == [1, 1]


def test_hysteresis_keeps_borderline_users():
    model = model_of(2, 2, margin=0.05)
    model.centroids = np.array([[1.0, 0.0], [0.0, 1.0]])
    borderline = np.array([[0.70, 0.714]]) / np.linalg.norm([0.70, 0.714])
    assert model.predict(borderline)[0].tolist() == [1]
    assert model.predict(borderline, np.array([0]))[0].tolist() == [0]
    assert model.predict(np.array([[0.0, 1.0]]), np.array([0]))[0].tolist() == [1]
    model.reseeded = [1]  # towards a freshly re-seeded centroid no margin applies
    assert model.predict(borderline, np.array([0]))[0].tolist() == [1]


def test_the_margin_is_relative_so_it_holds_the_same_users_at_any_scale():
    """An encoder that puts everything closer together (multilingual-e5-small against MiniLM)
    shrinks every distance alike: the same users must be kept."""
    rng = np.random.default_rng(11)
    centroids = rng.standard_normal((4, 8))
    users = rng.standard_normal((300, 8))
    current = rng.integers(0, 4, size=300)
    decisions = []
    for scale in (1.0, 0.3):
        model = model_of(4, 8, margin=0.1)
        model.centroids = centroids * scale
        decisions.append(model.predict(users * scale, current)[0])
    assert decisions[0].tolist() == decisions[1].tolist()
    assert 0 < (decisions[0] == current).sum() < 300


def test_match_ids_undoes_a_permutation():
    rng = np.random.default_rng(2)
    old = rng.standard_normal((6, 5))
    perm = rng.permutation(6)
    new = old[perm] + 0.01 * rng.standard_normal((6, 5))
    np.testing.assert_allclose(new[match_ids(old, new)], old, atol=0.05)


def test_refresh_keeps_ids_of_unchanged_users_and_reseeds_an_empty_segment():
    rng = np.random.default_rng(3)
    x = blobs(rng, 30, np.eye(3, 8) * 4)
    world = world_on(x, 3, refresh_every=100)
    before = world.segment
    # Every user of one segment takes up the taste of another: their segment empties, and a
    # refresh (due ten times sooner with an empty segment) re-seeds it at once.
    lost = before["u0"]
    new_taste = blobs(rng, 30, [np.eye(3, 8)[1] * 4])
    world.batch({f"u{i}": new_taste[i] for i in range(30)})
    refresh = world.model.history[-1]
    assert refresh["event"] == "refresh" and refresh["reseeded_empty"] == [lost]
    after = world.segment
    assert all(before[f"u{i}"] == after[f"u{i}"] for i in range(60, 90))
    assert min(world.model.sizes) > 0  # the crowded region split into the re-seeded segment
    assert {after[f"u{i}"] for i in range(60)} >= {lost}


def test_a_segment_the_census_counts_empty_is_not_reseeded_while_reservoir_users_are_nearest_to_it():
    """Sweeps reach a worker's users a share per version: right after a version the census can
    count no one in a segment whose users are on their way. That is no dead centroid."""
    rng = np.random.default_rng(4)
    model = model_of(3, 8, seed_users=90, refresh_every=100)
    stats = model.new_stats()
    for i, vector in enumerate(blobs(rng, 30, np.eye(3, 8) * 4)):
        stats.observe(f"u{i}", vector, None)
    model.learn(stats)
    model.census = {0: np.array([50, 40, 0])}
    model.sizes = model.census[0]
    assert model.empty_segments() == []
    model.updates_since_refresh = 10  # ten times sooner would be due, were a segment dead
    assert not model.needs_refresh()
    model.centroids[2] = -model.centroids[0] * 10  # now no user is nearest: dead
    assert model.empty_segments() == [2] and model.needs_refresh()


def test_a_batch_step_equals_single_steps_without_forgetting():
    rng = np.random.default_rng(7)
    start = rng.standard_normal((2, 4))
    xs = rng.standard_normal((5, 4))
    one, many = (model_of(2, 4, half_life_updates=1e18) for _ in range(2))
    for model in (one, many):
        model.centroids, model.weights = start.copy(), np.array([3.0, 1.0])
    batch = one.new_stats()
    for n, x in enumerate(xs):
        batch.observe(f"u{n}", x, 0)
        single = many.new_stats()
        single.observe(f"u{n}", x, 0)
        many.learn(single)
    one.learn(batch)
    np.testing.assert_allclose(one.centroids, many.centroids)
    np.testing.assert_allclose(one.centroids[0], (3 * start[0] + xs.sum(axis=0)) / 8)


def test_forgetting_lets_a_centroid_follow_drift():
    rng = np.random.default_rng(4)
    x = blobs(rng, 20, np.eye(2, 6) * 4)
    world = world_on(x, 2, half_life_updates=20, refresh_every=10_000)
    target = (np.eye(6)[0] * 0.6 + np.eye(6)[2] * 0.8).astype(np.float32)
    seg = int(world.model.predict(target[None, :])[0][0])
    for _ in range(40):
        world.batch({f"d{n}": target for n in range(5)})
    assert np.linalg.norm(world.model.centroids[seg] - target) < 0.05


def test_statistics_and_model_roundtrip():
    rng = np.random.default_rng(5)
    x = blobs(rng, 10, np.eye(2, 4))
    stats = CentroidStats(2, 4, version=3)
    stats.observe("a", x[0], 1)
    stats.observe("b", x[1], None)
    stats.census = {5: np.array([4, 1])}
    back = CentroidStats.from_doc(stats.to_doc())
    np.testing.assert_array_equal(back.sums, stats.sums)
    assert back.counts.tolist() == [0, 1] and back.census[5].tolist() == [4, 1] and back.version == 3
    assert back.users["b"][0] == -1 and np.allclose(back.users["a"][1], x[0], atol=1e-3)  # float16

    unseeded = model_of(2, 4, seed_users=100)
    unseeded.learn(stats)
    again = StreamingKMeans.from_doc(unseeded.to_doc(), unseeded.params, 4)
    assert not again.seeded and list(again.reservoir) == ["a", "b"] and again.assigned == {"a": 1}
    model = world_on(x, 2).model
    model.updates_offset = 41
    copy = StreamingKMeans.from_doc(model.to_doc(), KMeansParams(k=2, seed_users=20), 4)
    np.testing.assert_array_equal(copy.centroids, model.centroids)
    assert (copy.sizes.tolist(), copy.version, copy.updates_offset, copy.history) == (
        model.sizes.tolist(), model.version, 41, model.history
    )


def test_unchanged_users_keep_their_ids_across_many_refreshes():
    rng = np.random.default_rng(6)
    x = blobs(rng, 100, rng.standard_normal((5, 32)) * 2, spread=0.4)
    world = world_on(x, 5, refresh_every=100)
    first = world.segment
    movers = [f"u{i}" for i in range(0, 500, 5)]  # a fifth of the users keep changing taste
    for step in range(0, 1500, 10):
        world.batch({movers[(step + j) % len(movers)]: x[rng.integers(500)] for j in range(10)})
    refreshes = sum(e["event"] == "refresh" for e in world.model.history)
    still = [u for u in first if u not in movers]
    last = world.segment
    kept = sum(first[u] == last[u] for u in still) / len(still)
    assert refreshes >= 10 and kept >= 0.99, (refreshes, kept)


def test_a_canonical_rebuild_depends_only_on_the_users_vectors():
    rng = np.random.default_rng(8)
    x = blobs(rng, 40, rng.standard_normal((4, 16)) * 2, spread=0.3)
    results = []
    for order in (np.arange(len(x)), rng.permutation(len(x))):
        world = World(4, 16, seed_users=50, refresh_every=30)
        for begin in range(0, len(x), 16):  # another batching and order each time
            world.batch({f"u{i}": x[i] for i in order[begin : begin + 16]})
        model = world.model
        final = model.new_stats()
        final.rebuild = "canonical"
        model.learn(final)
        assert model.history[-1]["event"] == "rebuild" and model.rebuilt_version == model.version
        results.append(model.centroids.copy())
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)
    sizes = np.bincount(nearest(x, results[0]), minlength=4)
    assert list(sizes) == sorted(sizes, reverse=True)  # ids numbered by size


def test_a_canonical_rebuild_numbers_equal_segments_by_their_first_user():
    """Two segments of 15 users: which one k-means finds first is an accident of its restarts
    (and of float noise when a replay encodes in other batches); id 0 goes to the one holding
    the first user id, whichever blob that is."""
    rng = np.random.default_rng(3)
    x = blobs(rng, 15, rng.standard_normal((2, 16)) * 2, spread=0.3)
    for first_blob in (0, 1):
        model = model_of(2, 16, seed_users=30)
        order = np.roll(np.arange(30), 15 * first_blob)  # user u00 is in blob ``first_blob``
        for name, row in enumerate(order):
            model.reservoir[f"u{name:02d}"] = x[row]
        model.rebuild(canonical=True)
        segments = nearest(x[order], model.centroids)
        assert list(np.bincount(segments)) == [15, 15] and segments[0] == 0


def test_users_a_worker_could_not_assign_still_move_a_seeded_model():
    """A worker whose copy is not seeded yet (a backlog) sends vectors without segments."""
    model = model_of(2, 2)
    model.centroids, model.weights = np.eye(2), np.array([1.0, 1.0])
    stats = model.new_stats()
    stats.observe("late", np.array([0.0, 1.0], dtype=np.float32), None)
    stats.observe("later", np.array([0.6, 0.8], dtype=np.float32), None)
    assert model.learn(stats) and model.version == 1 and model.updates_since_refresh == 2
    np.testing.assert_allclose(model.centroids[1], [0.6 / 3, 2.8 / 3], atol=1e-3)  # (c + both) / 3
    np.testing.assert_array_equal(model.centroids[0], [1.0, 0.0])


def test_predict_follows_the_hysteresis_rule_row_by_row_and_for_a_whole_batch():
    rng = np.random.default_rng(5)
    model = model_of(6, 8, margin=0.3)
    model.centroids = rng.standard_normal((6, 8))
    model.reseeded = [2]
    matrix = rng.standard_normal((400, 8)).astype(np.float32)
    current = rng.integers(-1, 6, size=400)
    d = np.linalg.norm(matrix[:, None, :] - model.centroids[None, :, :], axis=2)

    for hysteresis in (True, False):
        expected = []
        for row, c in zip(d, current):
            best = int(row.argmin())
            keep = hysteresis and c >= 0 and best not in model.reseeded and row[c] - row[best] <= model.params.margin * row[best]
            expected.append(int(c) if keep else best)
        segments, distances = model.predict(matrix, current, hysteresis)
        assert segments.tolist() == expected
        np.testing.assert_allclose(distances, d[np.arange(400), expected], rtol=1e-6)
        one_by_one = [model.predict(matrix[i : i + 1], current[i : i + 1], hysteresis)[0][0] for i in range(400)]
        assert one_by_one == expected

    together, _ = model.predict(matrix, current)
    kept = (together == current) & (together != nearest(matrix, model.centroids))
    assert kept.sum() > 20  # hysteresis kept some users who are not at their nearest centroid


def test_cold_restarts_only_every_nth_refresh_or_when_a_segment_is_empty():
    rng = np.random.default_rng(6)
    x = blobs(rng, 30, np.eye(3, 16) * 5)
    world = world_on(x, 3, refresh_every=30, cold_refresh_every=3)
    for _ in range(12):
        world.batch({f"u{i}": v for i, v in enumerate(blobs(rng, 10, np.eye(3, 16) * 5))})
    refreshes = [e for e in world.model.history if e["event"] == "refresh"]
    assert len(refreshes) >= 6
    assert [e["cold"] for e in refreshes] == [
        bool(e["reseeded_empty"]) or n % 3 == 0 for n, e in enumerate(refreshes, start=1)
    ]


def test_a_backlog_of_unassigned_users_keeps_refreshes_on_schedule_and_warm():
    """Workers that work off a backlog before their copy is seeded send every user unassigned:
    sizes stay zero, which says nothing about empty segments."""
    rng = np.random.default_rng(7)
    model = model_of(3, 16, seed_users=30, refresh_every=60, cold_refresh_every=3)
    for step in range(12):
        stats = model.new_stats()
        for i, vector in enumerate(blobs(rng, 10, np.eye(3, 16) * 5)):
            stats.observe(f"u{step}-{i}", vector, None)
        model.learn(stats)
    refreshes = [e for e in model.history if e["event"] == "refresh"]
    assert model.seeded and model.sizes.tolist() == [0, 0, 0] and model.empty_segments() == []
    assert len(refreshes) == 11 * 30 // 60  # every refresh_every updates, not ten times sooner
    doubled = "users doubled since the last cold fit"
    assert [e["reservoir"] for e in refreshes] == [90, 150, 210, 270, 330]  # seeded on 30
    assert [e["cold_because"] for e in refreshes] == [doubled, None, doubled, None, None]  # never "empty segments"
    assert all(e["reseeded_empty"] == [] for e in refreshes)


def test_an_early_seed_on_few_users_is_refreshed_cold_as_they_double():
    rng = np.random.default_rng(9)
    model = model_of(3, 16, seed_users=200)
    stats = model.new_stats()
    for i, v in enumerate(blobs(rng, 4, np.eye(3, 16) * 5)):
        stats.observe(f"u{i}", v, None)
    model.learn(stats)
    assert not model.seeded and model.seed_early() and model.seeded_users == 12 and not model.seed_early()
    for step, per in enumerate((2, 4, 12)):  # 18, 30, 66 users: a refresh at 30 (>= 2 x 12), at 66 (>= 2 x 30)
        stats = model.new_stats()
        for i, v in enumerate(blobs(rng, per, np.eye(3, 16) * 5)):
            stats.observe(f"s{step}-{i}", v, int(np.argmax(v[:3])))
        model.learn(stats)
    refreshes = [e for e in model.history if e["event"] == "refresh"]
    assert [e["reservoir"] for e in refreshes] == [30, 66] and all(e["cold"] for e in refreshes)
    assert model.seeded_users == 66
    assert StreamingKMeans.from_doc(model.to_doc(), model.params, 16).seeded_users == 66
