"""The scalable Bloom filter of the items a user acted on."""

import numpy as np

from stream.core.acted_items import FALSE_POSITIVE, ActedItems, item_digest, stage_shape


def test_stages_double_in_capacity_and_tighten_so_the_whole_stays_under_the_bound():
    assert [stage_shape(s)[0] for s in range(4)] == [64, 128, 256, 512]
    rates = [FALSE_POSITIVE / 2 ** (s + 2) for s in range(30)]
    assert sum(rates) < FALSE_POSITIVE


def test_no_false_negatives_and_a_measured_false_positive_rate_under_one_percent():
    rng = np.random.default_rng(0)
    added = rng.choice(2**32, size=3000, replace=False).astype(np.uint64)
    acted = ActedItems.of(int(d) for d in added)
    assert acted.contains_many(added).all() and len(acted.stages) == 6
    others = np.setdiff1d(rng.choice(2**32, size=200_000, replace=False).astype(np.uint64), added)
    assert acted.contains_many(others).mean() < FALSE_POSITIVE


def test_an_item_added_twice_counts_once_and_bytes_round_trip():
    acted = ActedItems()
    for item in ("a", "b", "a"):
        acted.add(item_digest(item))
    back, size = ActedItems.from_bytes(acted.to_bytes() + b"rest", len(acted.stages))
    assert back == acted and acted.count == 2 and size == len(acted.to_bytes())
    assert item_digest("a") in back and item_digest("c") not in back and "a" not in back  # digests only
