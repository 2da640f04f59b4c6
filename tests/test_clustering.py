"""Incremental k-means with membership bookkeeping."""

import numpy as np

from models.clustering import OnlineKMeans


def blobs(rng, n_per, centers, spread=0.05):
    pts = [c + spread * rng.standard_normal((n_per, len(c))) for c in centers]
    x = np.concatenate(pts).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_seed_then_incremental_matches_member_means():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 8) * 3
    x = blobs(rng, 30, centers)
    model = OnlineKMeans(k=3, dim=8, seed_users=45)
    for i in range(45):
        model.buffer(f"u{i}", x[i * 2])
    assert model.ready_to_seed()
    seeded = model.seed()
    assert len(seeded) == 45 and sum(model.sizes()) == 45
    labels = {u: a.segment for u, a in seeded.items()}
    vectors = {f"u{i}": x[i * 2] for i in range(45)}
    # a user moves: its old vector leaves its old segment, the new one joins the nearest
    new = x[1]
    a = model.update(vectors["u0"], labels["u0"], new)
    vectors["u0"], labels["u0"] = new, a.segment
    for seg in range(3):
        members = [vectors[u] for u in labels if labels[u] == seg]
        np.testing.assert_allclose(model.centroids[seg], np.mean(members, axis=0), atol=1e-6)
    assert sum(model.sizes()) == 45


def test_seeding_recovers_well_separated_groups():
    rng = np.random.default_rng(1)
    x = blobs(rng, 20, np.eye(4, 16) * 5)
    model = OnlineKMeans(k=4, dim=16, seed_users=80)
    for i, v in enumerate(x):
        model.buffer(f"u{i}", v)
    seg = model.seed()
    groups = [{seg[f"u{i}"].segment for i in range(g * 20, g * 20 + 20)} for g in range(4)]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 4


def test_persistence_roundtrip():
    rng = np.random.default_rng(2)
    model = OnlineKMeans(k=2, dim=4, seed_users=10, version=5)
    for i, v in enumerate(blobs(rng, 3, np.eye(2, 4))):
        model.buffer(str(i), v)
    back = OnlineKMeans.from_bytes(model.to_bytes())
    assert back.version == 5 and not back.seeded and set(back.seed_buffer) == set(model.seed_buffer)
    for i, v in enumerate(blobs(rng, 5, np.eye(2, 4))):
        back.buffer(f"n{i}", v)
    back.seed()
    again = OnlineKMeans.from_bytes(back.to_bytes())
    np.testing.assert_array_equal(again.centroids, back.centroids)
    assert again.sizes() == back.sizes()
