"""A plain rolling restart on the default RocksDB store, while events flow (issue: whole users
lost when a restarted worker's standby took a partition over): two workers, each with its own
data dir; B is killed (SIGKILL) mid-stream and started again at once; soon after it is ready, A
is stopped (SIGTERM) and started again. Five event orders (seeds); every event is applied once
or dead-lettered, and every user's latest membership record names the segment of their row.
`segstream stress` runs the same rounds for as long as one wants (stream/tools/stress.py)."""

from __future__ import annotations

import dataclasses

import pytest

from stream.tools.stress import Scenario, run_round

# About 30 s of events at 60 a second: B's restart and A's stop both fall inside the stream.
SCENARIO = Scenario(users=45, events_per_user=40, rate=60.0, kill_after_s=(3.0, 8.0), stop_after_s=(2.0, 6.0))


@pytest.mark.parametrize("seed", range(5))
def test_every_event_counts_once_through_a_kill_and_a_rolling_restart(settings_for, tmp_path, seed):
    base = dataclasses.replace(settings_for(k=4, seed_users=20), store="rocksdb://")
    result = run_round(base, tmp_path, seed, SCENARIO)
    print(result.line())
    assert result.users_exact == result.users, f"{result.line()}\n{result.report}"
    # Events come in time order within a day; a partition held back while its worker was dead can
    # bring a user's events later than the dedup horizon (dead letters saying so), nothing else.
    assert set(result.dead_letter_reasons) <= {"beyond_dedup_horizon"}, result.line()
    assert result.membership_agrees == result.users, f"{result.line()}\n{result.report}"
