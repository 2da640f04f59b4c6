"""What the live page remembers: bounded change events and sizes per model version."""

from stream.core.recent import MAX_CHANGES, MAX_VERSIONS, Recent


def test_a_census_replaces_the_sizes_of_its_version_and_a_new_version_adds_a_point():
    recent = Recent()
    recent.adopted(1, [0, 0], ts=0.0)
    recent.adopted(1, [3, 4], ts=60.0)
    recent.adopted(2, [5, 4], ts=120.0)
    assert list(recent.versions) == [
        {"version": 1, "ts": "1970-01-01T00:01:00.000+00:00", "sizes": [3, 4]},
        {"version": 2, "ts": "1970-01-01T00:02:00.000+00:00", "sizes": [5, 4]},
    ]
    assert recent.sizes_back(1)["version"] == 1
    assert recent.sizes_back(10)["version"] == 1  # fewer kept: the oldest
    assert Recent().sizes_back(1) is None


def test_both_memories_are_bounded():
    recent = Recent()
    for n in range(MAX_VERSIONS + 5):
        recent.adopted(n, [n], ts=float(n))
        recent.changed({"n": n})
    assert len(recent.versions) == MAX_VERSIONS and recent.versions[0]["version"] == 5
    assert len(recent.changes) == MAX_CHANGES and recent.changes[-1] == {"n": MAX_VERSIONS + 4}
