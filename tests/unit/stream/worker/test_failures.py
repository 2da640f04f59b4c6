"""The environment's failures are not the record's (stream/worker/failures.py)."""

import asyncio
import errno

import pytest
from aiokafka import errors as kafka_errors

from stream.worker import failures
from stream.worker.failures import Failures, environmental, until_applied


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system"),
        Exception("IO error: No space left on device: While appending to file: /data/000004.log"),
        Exception("Corruption: block checksum mismatch"),
        kafka_errors.KafkaTimeoutError(),
        kafka_errors.NotLeaderForPartitionError(),
        MemoryError(),
    ],
)
def test_disk_store_producer_and_memory_failures_are_the_environments(exc):
    assert environmental(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("value is not JSON"),
        KeyError("user_id"),
        Exception("a record no check foresaw"),
        kafka_errors.MessageSizeTooLargeError(),
        kafka_errors.RecordTooLargeError(),
    ],
)
def test_a_records_failure_is_not(exc):
    assert environmental(exc) is None


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_failing_environment_is_retried_in_place_and_the_worker_is_unready_meanwhile(monkeypatch):
    monkeypatch.setattr(failures, "RETRY_EVERY_S", 0)
    clock = Clock()
    noted = Failures(exit_after_s=60, clock=clock)
    attempts = []

    async def attempt():
        attempts.append(noted.reason())
        clock.now += 10
        if len(attempts) < 3:
            raise Exception("IO error: No space left on device")

    asyncio.run(until_applied(noted, "applying events", attempt, stopping=lambda: False))
    failing = "applying events: the table store failed: IO error: No space left on device"
    assert attempts == ["", failing, failing]  # the reason /readyz gives while it retries
    assert noted.reason() == ""


def test_a_records_failure_is_raised_at_once():
    async def attempt():
        raise ValueError("bad record")

    with pytest.raises(ValueError):
        asyncio.run(until_applied(Failures(60), "applying events", attempt, stopping=lambda: False))


@pytest.mark.parametrize(("lasted_s", "stopping"), [(61, False), (0, True)])
def test_a_lasting_failure_or_a_stop_meanwhile_exits_without_returning(monkeypatch, lasted_s, stopping):
    monkeypatch.setattr(failures, "RETRY_EVERY_S", 0)
    clock = Clock()
    exits = []

    def exit_uncommitted(reason):
        exits.append(reason)
        raise SystemExit(75)

    monkeypatch.setattr(failures, "exit_uncommitted", exit_uncommitted)

    async def attempt():
        clock.now += lasted_s
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SystemExit):
        asyncio.run(until_applied(Failures(60, clock=clock), "applying events", attempt, stopping=lambda: stopping))
    assert len(exits) == 1 and "exiting without committing" in exits[0]


def test_never_exits_with_no_limit():
    assert not Failures(exit_after_s=0).lasted_too_long(10**9)
