"""The table partitions this data dir is writing: the mark a worker that dies leaves behind.

A partition is marked before its worker writes its first row, and unmarked once the rows have
reached the changelog and the partition was handed over (a rebalance, a clean shutdown). A
mark found at an assignment means the last worker on this data dir stopped mid-write (kill -9,
a crash, a lost session): its local rows cannot be trusted (stream/core/recovery_plan.py).
A small JSON file next to the tables, replaced atomically, so a kill at any moment leaves
either the old list or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE_NAME = "segstream-unflushed.json"


class UnflushedPartitions:
    """The marks on disk, and which of them this process made (``writing``): a hand-over
    clears only those; a mark left by a worker that died is cleared by wiping its partition."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self.writing: set[int] = set()
        self.republish: set[int] = set()  # wiped after a stop mid-write: send their users' last changes again

    def marked(self) -> set[int]:
        if not self.path.is_file():
            return set()
        return set(json.loads(self.path.read_text())["partitions"])

    def mark(self, partitions: set[int]) -> None:
        """Before this process writes rows of ``partitions``."""
        self.writing |= partitions
        self._write(self.marked() | partitions)

    def handed_over(self) -> None:
        """The rows this process wrote are in the changelog, and it writes no more until its
        next assignment."""
        self._write(self.marked() - self.writing)
        self.writing = set()

    def wiped(self, partitions: set[int]) -> None:
        """The local rows of ``partitions`` were deleted: nothing there is ahead of the changelog."""
        self.writing -= partitions
        self._write(self.marked() - partitions)

    def _write(self, partitions: set[int]) -> None:
        if partitions == self.marked():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_suffix(".tmp")
        with staged.open("w") as out:
            json.dump({"partitions": sorted(partitions)}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, self.path)
