"""Failures of the worker's environment, told apart from failures of a record.

A record the contract cannot use, or that trips a bug, is dead-lettered with its reason and the
worker goes on (Kafka Connect's DLQ, Kafka Streams' deserialization handler). A full disk, a
read-only or broken store, a producer that cannot deliver are not the record's fault: dead-lettering
would throw away every event while they last. Such a batch is retried where it stands, not
acknowledged, while ``/readyz`` says why; when it lasts, the worker exits non-zero without
committing it (Kafka Streams' uncaught-exception handler stops the thread), and the next start
or the next holder of the partitions applies it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable

from aiokafka import errors as kafka_errors

from stream.contract.records import shown

log = logging.getLogger("segstream")

# RocksDB's status names (rocksdb/status.h), which rocksdict raises as a bare Exception.
ROCKSDB_STATUS = (
    "IO error", "Corruption", "Not implemented", "Invalid argument", "Busy", "Timed out", "Aborted",
    "Shutdown in progress", "Operation expired", "Try again", "No space", "Resource busy", "Result incomplete",
)
# Errors of one record the broker refuses for its own sake: a dead letter, not a stall.
RECORD_REFUSED = (
    kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordTooLargeError, kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidMessageError, kafka_errors.CorruptRecordException,
)
RETRY_EVERY_S = 2.0


def environmental(exc: BaseException) -> str | None:
    """Why ``exc`` is the environment's failure (disk, store, producer, memory); None when it
    may be the record's."""
    if isinstance(exc, OSError | MemoryError | TimeoutError):
        return f"{type(exc).__name__}: {exc}"
    if type(exc) is Exception and str(exc).startswith(ROCKSDB_STATUS):
        return f"the table store failed: {exc}"
    if isinstance(exc, kafka_errors.KafkaError) and not isinstance(exc, RECORD_REFUSED):
        return f"Kafka: {shown(exc)}"
    return None


class Failures:
    """The writers that currently fail for environmental reasons, and since when."""

    def __init__(self, exit_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.exit_after_s = exit_after_s  # 0: never exit, stay unready
        self.clock = clock
        self.since: dict[str, tuple[float, str]] = {}

    def reason(self) -> str:
        """Why the worker is not ready ("" when nothing fails)."""
        return "; ".join(f"{where}: {why}" for where, (_, why) in sorted(self.since.items()))

    def failed(self, where: str, why: str) -> float:
        """Note a failure of ``where``; how long it has been failing."""
        started, _ = self.since.get(where, (self.clock(), why))
        if where not in self.since:
            log.error("%s fails for a reason of the environment (%s); retrying every %g s, not ready meanwhile",
                      where, why, RETRY_EVERY_S)
        self.since[where] = (started, why)
        return self.clock() - started

    def cleared(self, where: str) -> None:
        if self.since.pop(where, None) is not None:
            log.info("%s works again", where)

    def lasted_too_long(self, lasted_s: float) -> bool:
        return self.exit_after_s > 0 and lasted_s >= self.exit_after_s


async def until_applied(
    failures: Failures, where: str, attempt: Callable[[], Awaitable[None]], stopping: Callable[[], bool]
) -> None:
    """``attempt()`` until it does not fail for a reason of the environment; a record's failure
    is raised. Never returns with the attempt undone: when the failure lasts, or the worker is
    stopping meanwhile, the process exits at once, so that nothing is committed past it."""
    while True:
        try:
            await attempt()
        except Exception as exc:
            why = environmental(exc)
            if why is None:
                raise
            lasted = failures.failed(where, why)
            if stopping() or failures.lasted_too_long(lasted):
                exit_uncommitted(f"{where} failed for {lasted:.0f} s ({why}); exiting without committing "
                                 "what it could not apply")
            await asyncio.sleep(RETRY_EVERY_S)
            continue
        failures.cleared(where)
        return


def exit_uncommitted(reason: str) -> None:
    """Exit non-zero at once, as a kill would: Faust must not commit the batch in hand (its
    batches acknowledge their events however the loop body ends)."""
    log.critical("%s", reason)
    print(f"segstream worker: {reason}", file=sys.stderr, flush=True)
    os._exit(75)
