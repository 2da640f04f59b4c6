"""The index of behaviours held for unknown items: by item, bounded, and forgetting."""

from stream.contract.records import Source
from stream.core.user_state import PendingBehavior, UserState
from stream.core.waiting_items import WaitingItems


def holding(user: str, *items: str) -> UserState:
    state = UserState(user)
    state.pending = [PendingBehavior(f"{user}-{i}", item, "view", 0.0, Source("b", 0, i)) for i, item in enumerate(items)]
    return state


def test_users_are_found_by_the_items_they_wait_for():
    waiting = WaitingItems()
    waiting.note_all([holding("u1", "x", "y", "x"), holding("u2", "y")])
    assert waiting.totals() == {"users": 2, "behaviours": 4, "items": 2, "unindexed_users": 0}
    assert waiting.arrived(lambda item: item == "y", 10) == ["u1", "u2"]
    assert waiting.arrived(lambda item: item == "y", 1) == ["u1"]
    waiting.note(holding("u1"))  # nothing held any more
    assert waiting.totals() == {"users": 1, "behaviours": 1, "items": 1, "unindexed_users": 0}
    waiting.forget("u2")
    assert waiting.totals()["items"] == 0 and waiting.arrived(lambda item: True, 10) == []


def test_past_the_bound_users_are_counted_but_not_indexed():
    waiting = WaitingItems(max_pairs=3)
    waiting.note_all([holding("u1", "a", "b"), holding("u2", "c", "d"), holding("u3", "e")])
    assert waiting.totals() == {"users": 3, "behaviours": 5, "items": 3, "unindexed_users": 1}
    assert waiting.arrived(lambda item: True, 10) == ["u1", "u3"]
    waiting.clear()
    assert waiting.totals() == {"users": 0, "behaviours": 0, "items": 0, "unindexed_users": 0}
