"""The encoder bench's quality figure: nearest-neighbour accuracy of an embedding space."""

from __future__ import annotations

from collections import Counter

import numpy as np

from stream.tools.bench.encoder import chinese_sample, neighbour_accuracy


def test_neighbours_vote_for_what_the_space_keeps_apart():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 4
    embeddings = np.concatenate([centre + rng.standard_normal((20, 8)) * 0.3 for centre in centres])
    topics = [t for t in "abc" for _ in range(20)]
    assert neighbour_accuracy(embeddings, topics) == 1.0
    unrelated = list(rng.permutation(["x", "y"] * 30))  # labels the space knows nothing of
    assert 0.2 < neighbour_accuracy(embeddings, unrelated) < 0.8


def test_the_chinese_sample_spreads_over_domains_and_sentiments():
    sample = chinese_sample(60)
    groups = Counter((r.domain, r.sentiment) for r in sample)
    assert {d for d, _ in groups} == {"hotel", "book", "electronics"} and {s for _, s in groups} == {"pos", "neg"}
    assert set(groups.values()) == {10}
