"""Records reach their stream without a task each when the delivery need not wait."""

from __future__ import annotations

import asyncio

import pytest

from stream.worker.eager_delivery import eager, finished_first


async def _now(message: str) -> str:
    return message.upper()


async def _after(event: asyncio.Event, message: str) -> str:
    await event.wait()
    return message.upper()


def test_a_delivery_that_needs_no_wait_is_a_done_future_and_wait_first_takes_it_without_a_task():
    async def run() -> None:
        tasks_before = len(asyncio.all_tasks())
        future = eager(_now)("a")
        assert future.done() and future.result() == "A" and len(asyncio.all_tasks()) == tasks_before
        other = asyncio.Event().wait()
        winners = finished_first(future, (other,), stopped=False)
        assert winners.done == [future] and winners.results == ["A"] and not winners.stopped
        assert other.cr_frame is None  # closed: no "never awaited" warning

    asyncio.run(run())


def test_a_delivery_that_waits_goes_on_in_a_task_where_it_stopped():
    async def run() -> None:
        event = asyncio.Event()
        future = eager(lambda m: _after(event, m))("b")
        assert not future.done() and finished_first(future, (), stopped=False) is None
        event.set()
        assert await future == "B"

    asyncio.run(run())


def test_errors_and_cancellation_reach_the_caller():
    async def fails(message: str) -> None:
        raise ValueError(message)

    async def run() -> None:
        with pytest.raises(ValueError, match="bad"):
            finished_first(eager(fails)("bad"), (), stopped=False)
        future = eager(lambda m: _after(asyncio.Event(), m))("c")
        future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await future
        assert finished_first(eager(_now)("d"), (), stopped=True) is None  # a stopping consumer waits as before

    asyncio.run(run())
