"""Where user states live: the ``users`` table in a worker, a dict of rows in one process.

Both keep rows as :meth:`UserState.to_bytes` writes them, so everything run through the
in-memory store (evaluate, tests, bench) takes the same round trip as a deployment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from stream.core.user_state import UserState


class UserStore(ABC):
    """The users a worker holds, by user id."""

    @abstractmethod
    def get(self, user_id: str) -> UserState | None:
        """The user's state, or None for a user never seen."""

    @abstractmethod
    def put_many(self, states: Iterable[UserState]) -> None:
        """Write these states back (after a batch or a sweep chunk)."""

    @abstractmethod
    def delete_many(self, user_ids: Iterable[str]) -> None:
        """Erase these users' rows (forgotten users); unknown ids are ignored."""

    @abstractmethod
    def user_ids(self) -> list[str]:
        """Every user this store holds for this worker (what a sweep goes over)."""

    def held(self, user_ids: Iterable[str]) -> list[str]:
        """Those of ``user_ids`` this worker holds now (a rebalance can take a user away between
        listing and writing: a row written then would overwrite the new holder's)."""
        return list(user_ids)


class InMemoryUserStore(UserStore):
    """Rows in a dict, as the Faust table stores them."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}

    def get(self, user_id: str) -> UserState | None:
        raw = self.rows.get(user_id)
        return None if raw is None else UserState.from_bytes(raw)

    def put_many(self, states: Iterable[UserState]) -> None:
        for state in states:
            self.rows[state.user_id] = state.to_bytes()

    def delete_many(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            self.rows.pop(user_id, None)

    def user_ids(self) -> list[str]:
        return list(self.rows)
