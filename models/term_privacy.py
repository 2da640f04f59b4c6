"""What keeps a segment portrait from naming a person: contact details never become terms, and
a term enters a portrait only once enough distinct users of the segment used it.

Counting distinct users per (segment, term) exactly would mean remembering every user of every
term. It is enough to know whether at least ``min_users`` did, so a term that has not reached
the threshold (a *candidate*) keeps its decayed count and a set of at most ``min_users`` 32-bit
hashes of its users; once the set is full the term is promoted into the portrait and its set is
dropped. Memory per segment is at most ``max_terms`` candidates times ``min_users`` hashes. A
collision of two users' hashes only makes a term wait for one more user: the error is never in
the direction of showing a term too early. Candidates never leave the process that holds them
except in a worker's update to the model owner (``to_doc(candidates=True)``): the published model
carries promoted terms only, so a new owner starts its candidates afresh (a term then needs its
users again: slower, never leakier).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Removed from a review before its terms are taken: e-mail addresses, URLs (with a scheme or
# www.) and phone-like numbers (7+ digits, with spaces, dots, dashes, brackets or a leading +).
_CONTACTS = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|(?:[a-z][a-z0-9+.-]*://|www\.)\S+"
    r"|\+?\(?\d(?:[\s().-]*\d){6,}",
    re.IGNORECASE,
)


def scrub_contacts(text: str) -> str:
    """``text`` without e-mail addresses, URLs and phone-like numbers."""
    return _CONTACTS.sub(" ", text)


def user_hash(user_id: str) -> int:
    """A 32-bit hash of a user id: enough to tell a handful of users apart."""
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=4).digest(), "little")


@dataclass(slots=True)
class Candidates:
    """One segment's terms below the user threshold: decayed counts (in the profiles' stored
    units) and the hashes of their users, at most ``min_users`` per term."""

    counts: dict[str, float] = field(default_factory=dict)
    users: dict[str, set[int]] = field(default_factory=dict)

    def add(self, term: str, mass: float, users: Iterable[int], min_users: int) -> float | None:
        """Count ``mass`` for ``term`` used by ``users``; the term's whole count when it now has
        ``min_users`` users (it leaves the candidates: the caller promotes it), else None."""
        seen = self.users.setdefault(term, set())
        seen.update(users)
        count = self.counts.get(term, 0.0) + mass
        if len(seen) >= min_users:
            del self.users[term]
            self.counts.pop(term, None)
            return count
        self.counts[term] = count
        return None

    def pop(self, term: str) -> float:
        """A term promoted elsewhere: its count so far (0 when it was no candidate)."""
        self.users.pop(term, None)
        return self.counts.pop(term, 0.0)

    def forget(self, user: int) -> None:
        """A user's hash leaves every term's users."""
        for users in self.users.values():
            users.discard(user)

    def keep(self, terms: Iterable[str]) -> None:
        """Only ``terms`` remain candidates (the others were pruned)."""
        kept = set(terms)
        self.counts = {t: c for t, c in self.counts.items() if t in kept}
        self.users = {t: u for t, u in self.users.items() if t in kept}

    def rescale(self, factor: float) -> None:
        for term in self.counts:
            self.counts[term] *= factor

    def to_doc(self) -> dict[str, Any]:
        return {"counts": self.counts, "users": {t: sorted(u) for t, u in self.users.items()}}

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Candidates:
        if not doc:
            return cls()
        return cls(
            {str(t): float(c) for t, c in doc["counts"].items()},
            {str(t): {int(h) for h in u} for t, u in doc["users"].items()},
        )
