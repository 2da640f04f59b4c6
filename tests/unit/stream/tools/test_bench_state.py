"""bench --state's tables: rows through the worker's path, the rest copies of them under their own ids."""

import dataclasses

import numpy as np

from stream.config import Settings
from stream.core.user_state import UserState
from stream.tools.bench.state import (
    SYNTHETIC_ITEMS, _owner_pass, _random_catalogue, _table_of, _user_id, _worker_batches, print_state_section,
)


def test_a_table_past_the_templates_holds_copies_that_are_the_templates_states_under_their_own_ids():
    settings = dataclasses.replace(Settings(), seed_users=20)
    catalogue = _random_catalogue([f"item-{n}" for n in range(SYNTHETIC_ITEMS)])
    table = _table_of(settings, 250, 30, catalogue, np.random.default_rng(0), through_path=100)
    rows = table["store"].rows
    assert list(rows) == [_user_id(u) for u in range(250)] and len(table["templates"]) == 100 and len(table["timed"]) == 30
    for u in (0, 99, 100, 187, 249):
        state, template = UserState.from_bytes(rows[_user_id(u)]), UserState.from_bytes(rows[_user_id(u % 100)])
        assert state.user_id == _user_id(u) and state.segment == template.segment is not None
        assert np.array_equal(state.vector_sum, template.vector_sum) and state.seen == template.seen
    table["updates"] = _worker_batches(table["run"], table["timed"])  # the timed events apply to copies too
    assert all(UserState.from_bytes(rows[m.key.decode()]).event_count >= 2 for m in table["timed"])
    owner = _owner_pass(table)
    assert owner["reservoir"] > 100  # filled from the latest users, copies included


def test_the_cost_table_ends_with_the_largest_tables_cost_over_the_smallest(capsys):
    ml = {"events": 1, "users": 1, "bytes": {"median": 1, "p95": 1, "max": 1}, "over_budget": 0, "budget": 2048,
          "digests_over": None, "cosine": {"min": 1.0, "median": 1.0}}
    row = {"events": 10, "row_bytes_mean": 900, "owner_reservoir": 1, "owner_refreshes": 0,
           "owner_warm_refresh_s": 0.1, "owner_cold_refresh_s": 0.2, "owner_us_per_event": 1.0}
    cost = [
        {**row, "users": users, "worker_us_per_event": us, "owner_us_per_event_with_cold_share": cold}
        for users, us, cold in ((1_000, 100.0, 2.0), (10_000, 110.0, 2.0), (1_000_000, 130.0, 3.0))
    ]
    print_state_section({"batch_size": 500, "catalogue": "c", "repeats": 3, "refresh_every": 5,
                         "cold_refresh_every": 10, "movielens": ml, "cost": cost})
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "  ratio 10,000 / 1,000 users: worker 1.10x, owner with cold 1.00x",
        "  ratio 1,000,000 / 10,000 users: worker 1.18x, owner with cold 1.50x",
        "  ratio 1,000,000 / 1,000 users: worker 1.30x, owner with cold 1.50x",
    ]
