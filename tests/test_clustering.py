"""Streaming k-means: seeding, mini-batch steps, refreshes with stable ids, hysteresis."""

import numpy as np

from models.clustering import StreamingKMeans, match_ids, nearest


def blobs(rng, n_per, centers, spread=0.05):
    pts = [c + spread * rng.standard_normal((n_per, len(c))) for c in centers]
    x = np.concatenate(pts).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def model_on(x, k, **kw) -> StreamingKMeans:
    model = StreamingKMeans(k=k, dim=x.shape[1], seed_users=len(x), **kw)
    for i, v in enumerate(x):
        model.observe(f"u{i}", None, v)
    return model


def test_seeding_recovers_well_separated_groups():
    rng = np.random.default_rng(1)
    x = blobs(rng, 20, np.eye(4, 16) * 5)
    model = model_on(x, 4)
    assert model.ready_to_seed()
    seg = model.seed()
    groups = [{seg[f"u{i}"].segment for i in range(g * 20, g * 20 + 20)} for g in range(4)]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 4
    assert model.sizes.sum() == 80 and model.events[-1]["event"] == "seed"


def test_hysteresis_keeps_borderline_users():
    centroids = np.array([[1.0, 0.0], [0.0, 1.0]])
    borderline = np.array([0.70, 0.714]) / np.linalg.norm([0.70, 0.714])
    assert nearest(centroids, borderline).segment == 1
    assert nearest(centroids, borderline, current=0, margin=0.05).segment == 0
    assert nearest(centroids, np.array([0.0, 1.0]), current=0, margin=0.05).segment == 1


def test_match_ids_undoes_a_permutation():
    rng = np.random.default_rng(2)
    old = rng.standard_normal((6, 5))
    perm = rng.permutation(6)
    new = old[perm] + 0.01 * rng.standard_normal((6, 5))
    np.testing.assert_allclose(new[match_ids(old, new)], old, atol=0.05)


def test_refresh_keeps_ids_of_unchanged_users_and_reseeds_an_empty_segment():
    rng = np.random.default_rng(3)
    x = blobs(rng, 30, np.eye(3, 8) * 4)
    model = model_on(x, 3, refresh_every=100)
    before = {u: a.segment for u, a in model.seed().items()}
    # Every user of one segment takes up the taste of another: their segment empties.
    lost = before["u0"]
    new_taste = blobs(rng, 30, [np.eye(3, 8)[1] * 4])
    for i in range(30):
        model.observe(f"u{i}", before[f"u{i}"], new_taste[i])
    assert model.sizes[lost] == 0 and model.needs_refresh()
    changed = model.refresh()
    after = dict(model.assigned)
    unchanged = [f"u{i}" for i in range(60, 90)]
    assert all(before[u] == after[u] for u in unchanged)
    assert sorted(model.sizes.tolist())[0] > 0
    assert changed and set(changed) <= {f"u{i}" for i in range(60)}  # only the crowded region splits
    assert model.events[-1]["event"] == "refresh" and model.events[-1]["reseeded_empty"] == [lost]


def test_forgetting_lets_a_centroid_follow_drift():
    rng = np.random.default_rng(4)
    x = blobs(rng, 20, np.eye(2, 6) * 4)
    model = model_on(x, 2, half_life_updates=20, refresh_every=10_000)
    seg = model.seed()["u0"].segment
    target = np.eye(6)[0] * 0.6 + np.eye(6)[2] * 0.8
    for n in range(200):
        model.observe(f"d{n % 5}", seg, target.astype(np.float32))
    assert np.linalg.norm(model.centroids[seg] - target) < 0.05


def test_persistence_roundtrip():
    rng = np.random.default_rng(5)
    x = blobs(rng, 10, np.eye(2, 4))
    unseeded = model_on(x[:5], 2)
    unseeded.seed_users = 100
    back = StreamingKMeans(k=2, dim=4, seed_users=100).restore(unseeded.to_bytes())
    assert not back.seeded and list(back.reservoir) == list(unseeded.reservoir)
    model = model_on(x, 2)
    model.seed()
    model.version = 7
    again = StreamingKMeans(k=2, dim=4, seed_users=20).restore(model.to_bytes())
    np.testing.assert_array_equal(again.centroids, model.centroids)
    assert again.sizes.tolist() == model.sizes.tolist() and again.version == 7 and again.events == model.events


def test_unchanged_users_keep_their_ids_across_many_refreshes():
    rng = np.random.default_rng(6)
    x = blobs(rng, 100, rng.standard_normal((5, 32)) * 2, spread=0.4)
    model = model_on(x, 5, refresh_every=100)
    first = {u: a.segment for u, a in model.seed().items()}
    movers = [f"u{i}" for i in range(0, 500, 5)]  # a fifth of the users keep changing taste
    segment = dict(first)
    for step in range(1500):
        user = movers[step % len(movers)]
        a = model.observe(user, segment[user], x[rng.integers(500)])
        segment[user] = a.segment
        if model.needs_refresh():
            segment.update({u: c.segment for u, c in model.refresh().items()})
    refreshes = sum(e["event"] == "refresh" for e in model.events)
    still = [u for u in first if u not in movers]
    kept = sum(first[u] == segment[u] for u in still) / len(still)
    assert refreshes >= 10 and kept >= 0.99, (refreshes, kept)
