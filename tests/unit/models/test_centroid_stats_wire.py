"""A worker's batch statistics on the wire: only the touched segments, and the dense form read too."""

from __future__ import annotations

import json

import numpy as np

from models.arrays import encode_array
from models.centroid_stats import CentroidStats


def test_only_touched_segments_travel_and_come_back_at_float32_precision():
    stats = CentroidStats(k=8, dim=4, version=3)
    rng = np.random.default_rng(0)
    for n in range(5):
        vector = rng.normal(size=4).astype(np.float32)
        stats.observe(f"u{n}", vector / np.linalg.norm(vector), segment=2 if n < 3 else 6)
    doc = json.loads(json.dumps(stats.to_doc()))
    assert doc["rows"] == [2, 6]
    back = CentroidStats.from_doc(doc)
    np.testing.assert_allclose(back.sums, stats.sums, rtol=1e-6, atol=1e-7)
    assert back.counts.tolist() == stats.counts.tolist() and not back.sums[[0, 1, 3, 4, 5, 7]].any()


def test_an_update_with_every_row_in_float64_is_read():
    stats = CentroidStats(k=2, dim=3)
    stats.observe("u", np.array([0.6, 0.8, 0.0], np.float32), segment=1)
    doc = stats.to_doc()
    del doc["rows"]
    doc["sums"] = encode_array(stats.sums, "<f8")
    np.testing.assert_array_equal(CentroidStats.from_doc(doc).sums, stats.sums)
