"""The producer buffer's flush is a barrier: it returns once every message put in it has been
answered by the broker, however slow the client is (Faust's own gave up after 0.1 s per
message, and offsets were then committed past table rows still in the buffer)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
import pytest
from faust.types.tuples import FutureMessage

from stream.worker.producer_patch import DeliveredBuffer, use_delivered_flush

CLIENT_S = 0.15  # the client's time to take one message: longer than Faust's 0.1 s patience
BROKER_S = 0.2  # then the broker's time to answer


class SlowClient:
    """A topic whose client takes CLIENT_S per message and is answered BROKER_S later
    (or refuses the message with ``refuse``)."""

    def __init__(self, refuse: set[int] = frozenset()) -> None:
        self.refuse = refuse

    async def publish_message(self, fut: FutureMessage, wait: bool = False) -> None:
        await asyncio.sleep(CLIENT_S)
        if fut.message.value in self.refuse:
            raise ValueError("record too large")
        asyncio.get_running_loop().call_later(BROKER_S, fut.set_result, f"delivered {fut.message.value}")


def new_buffer() -> DeliveredBuffer:
    buffer = DeliveredBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    return buffer


def message(client: SlowClient, n: int) -> FutureMessage:
    return FutureMessage(SimpleNamespace(channel=client, value=n))


def test_flush_returns_only_when_every_message_is_delivered():
    async def run() -> tuple[list[FutureMessage], int]:
        buffer, client = new_buffer(), SlowClient()
        await buffer.start()
        try:
            futs = [message(client, n) for n in range(4)]
            for fut in futs:
                buffer.put(fut)
            await buffer.flush()
            return futs, buffer.size
        finally:
            await buffer.stop()

    futs, left = asyncio.run(run())
    assert left == 0
    assert [fut.result() for fut in futs] == [f"delivered {n}" for n in range(4)]


def test_flush_under_load_waits_for_what_was_put_before_it_not_after():
    async def run() -> tuple[FutureMessage, FutureMessage]:
        buffer, client = new_buffer(), SlowClient()
        await buffer.start()
        try:
            before, after = message(client, 0), message(client, 1)
            buffer.put(before)
            flushing = asyncio.ensure_future(buffer.flush())
            await asyncio.sleep(0)
            buffer.put(after)
            await flushing
            return before, after
        finally:
            await buffer.stop()

    before, after = asyncio.run(run())
    assert before.done() and not after.done()


def test_a_message_the_client_refuses_fails_and_flush_raises_instead_of_hanging():
    """The buffer's task ends on a refused message (Faust's, unchanged): nothing after it can
    be delivered, so no commit may go ahead."""

    async def run() -> tuple[FutureMessage, BaseException | None]:
        buffer, client = new_buffer(), SlowClient(refuse={0})
        await buffer.start()
        refused = message(client, 0)
        buffer.put(refused)
        try:
            await asyncio.wait_for(buffer.flush(), timeout=5)
        except RuntimeError as exc:
            return refused, exc
        finally:
            await buffer.stop()
        return refused, None

    refused, error = asyncio.run(run())
    assert "1 messages undelivered" in str(error)
    with pytest.raises(ValueError, match="record too large"):
        refused.result()


def test_flush_of_a_buffer_that_is_not_running_says_so_instead_of_waiting_for_ever():
    async def run() -> None:
        buffer, client = new_buffer(), SlowClient()
        buffer.put(message(client, 1))
        await buffer.flush()

    with pytest.raises(RuntimeError, match="1 messages undelivered"):
        asyncio.run(run())


def test_a_worker_app_gets_the_delivered_flush(tmp_path):
    use_delivered_flush()
    app = faust.App("producer-flush-test", broker="kafka://localhost:1", datadir=str(tmp_path))
    assert isinstance(app.producer.buffer, DeliveredBuffer)
