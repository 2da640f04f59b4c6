"""The recent past a worker remembers for its live page (stream/worker/page.py): the last change
events it published and the segment sizes of the last model versions it adopted. Bounded and
in memory: a restarted worker starts a new picture."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stream.contract.records import iso_ms

MAX_CHANGES = 50
MAX_VERSIONS = 50


@dataclass
class Recent:
    changes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_CHANGES))
    versions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_VERSIONS))

    def changed(self, change: dict[str, Any]) -> None:
        """A change event this worker published (its JSON document)."""
        self.changes.append(change)

    def adopted(self, version: int, sizes: Sequence[int], ts: float) -> None:
        """The sizes of model ``version`` as of ``ts`` (epoch seconds): a new version is a new
        point; newer sizes of the same version (a census) replace its point."""
        point = {"version": version, "ts": iso_ms(ts), "sizes": [int(n) for n in sizes]}
        if self.versions and self.versions[-1]["version"] == version:
            self.versions[-1] = point
        else:
            self.versions.append(point)

    def sizes_back(self, versions: int) -> dict[str, Any] | None:
        """The point ``versions`` versions before the latest (the oldest kept if fewer), or None."""
        if not self.versions:
            return None
        return self.versions[max(len(self.versions) - 1 - versions, 0)]
