"""The encoder's thread count follows the CPUs the process may really use, container quotas included."""

import os

from joblib.externals.loky.backend import context

from models.encoder import physical_cores


def test_a_cgroup_cpu_quota_caps_the_threads(monkeypatch):
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
    # What a container started with --cpus=1 (cgroup cpu.max "100000 100000") reads.
    monkeypatch.setattr(context, "_cpu_count_cgroup", lambda os_cpu_count: 1)
    assert physical_cores() == 1


def test_an_affinity_of_one_cpu_caps_the_threads(monkeypatch):
    monkeypatch.setattr(context, "_cpu_count_affinity", lambda os_cpu_count: 1)
    assert physical_cores() == 1
