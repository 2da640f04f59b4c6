"""Behaviours held for items the catalogue does not know yet, indexed by item, so that they
apply when their item arrives rather than on their user's next event, which may never come.

The index is in memory, per worker, and bounded: beyond ``max_pairs`` (user, item) pairs a
user is left out of it (counted as unindexed), and their held behaviours apply on their next
event, as before. A worker rebuilds it from its users' rows after each rebalance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from stream.core.user_state import UserState

MAX_PAIRS = 200_000


class WaitingItems:
    def __init__(self, max_pairs: int = MAX_PAIRS) -> None:
        self.max_pairs = max_pairs
        self.clear()

    def clear(self) -> None:
        self.users_of: dict[str, set[str]] = {}  # item id -> users holding behaviours on it
        self.items_of: dict[str, set[str]] = {}  # user id -> the items they wait for
        self.held: dict[str, int] = {}  # user id -> behaviours held (indexed or not)
        self.unindexed: set[str] = set()
        self.pairs = 0

    def note(self, state: UserState) -> None:
        """Index ``state``'s held behaviours as they are now (none: the user leaves the index)."""
        self.forget(state.user_id)
        if not state.pending:
            return
        items = {p.item_id for p in state.pending}
        self.held[state.user_id] = len(state.pending)
        if self.pairs + len(items) > self.max_pairs:
            self.unindexed.add(state.user_id)
            return
        self.items_of[state.user_id] = items
        self.pairs += len(items)
        for item_id in items:
            self.users_of.setdefault(item_id, set()).add(state.user_id)

    def note_all(self, states: Iterable[UserState]) -> None:
        for state in states:
            self.note(state)

    def forget(self, user_id: str) -> None:
        self.held.pop(user_id, None)
        self.unindexed.discard(user_id)
        items = self.items_of.pop(user_id, ())
        self.pairs -= len(items)
        for item_id in items:
            users = self.users_of[item_id]
            users.discard(user_id)
            if not users:
                del self.users_of[item_id]

    def arrived(self, known: Callable[[str], bool], limit: int) -> list[str]:
        """Up to ``limit`` users waiting for an item ``known`` now says is in the catalogue."""
        users: list[str] = []
        for item_id in list(self.users_of):
            if len(users) >= limit:
                break
            if known(item_id):
                users.extend(sorted(self.users_of[item_id])[: limit - len(users)])
        return list(dict.fromkeys(users))

    def totals(self) -> dict[str, Any]:
        return {
            "users": len(self.held),
            "behaviours": sum(self.held.values()),
            "items": len(self.users_of),
            "unindexed_users": len(self.unindexed),
        }
