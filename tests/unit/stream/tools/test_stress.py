"""The stress rounds' inputs and verdicts (stream/tools/stress.py); the rounds themselves run in
tests/integration/test_rolling_restart.py."""

from collections import Counter

from stream.tools.stress import RoundResult, Scenario, events_for


def test_each_seed_is_another_order_of_the_same_kind_of_events():
    scenario = Scenario(users=20, events_per_user=15)
    first, again, other = events_for(1, scenario), events_for(1, scenario), events_for(2, scenario)
    assert first == again and first != other
    per_user = Counter(e["user_id"] for e in first)
    assert len(per_user) == 20 and set(per_user.values()) == {15}
    day_ms = 86_400_000
    assert all(b["ts"] >= a["ts"] - day_ms for a, b in zip(first, first[1:]))  # time order within a day


def test_a_round_misses_when_a_count_or_a_membership_is_off():
    def result(users_exact: int, agrees: int) -> RoundResult:
        return RoundResult(0, 100, 100, 0, 10, users_exact, agrees, 1.0)

    assert result(10, 10).ok and "ok" in result(10, 10).line()
    assert not result(9, 10).ok and "MISS" in result(9, 10).line()
    assert not result(10, 9).ok
