"""Faust's producer flush made a barrier: it returns when everything produced before it is delivered.

Table rows reach their changelog through Faust's producer buffer (``send_soon``), drained by a
task of its own. Before committing input offsets, and before a rebalance hands partitions over,
Faust calls ``producer.flush()`` so that the rows of the events being committed are in Kafka.
faust-streaming's ``ProducerBuffer.flush`` gives up as soon as the buffer's task takes more than
0.1 s over one message (a full client buffer, a slow broker, a busy event loop), and does not
wait for the message its task is handing to the client. Offsets could then be committed past
rows still in the buffer, and the next holder of the partition would recover the rows without
those events and never read them again (a graceful stop can lose the buffer outright: Faust
closes its client first).

Here the buffer remembers every message put in it until the broker has answered, and ``flush``
waits for all those put before it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport import producer as faust_producer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import FutureMessage

log = logging.getLogger("segstream")


class DeliveredBuffer(faust_producer.ProducerBuffer):
    """A producer buffer whose ``flush`` returns once every message put in it was delivered
    (or failed: the failure is the message's own, as before)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.undelivered: set[FutureMessage] = set()

    def put(self, fut: FutureMessage) -> None:
        self.undelivered.add(fut)
        fut.add_done_callback(self.undelivered.discard)
        super().put(fut)

    async def _send_pending(self, fut: FutureMessage) -> None:
        try:
            await super()._send_pending(fut)
        except Exception as exc:  # the client refused it: nothing will ever answer it
            if not fut.done():
                fut.set_exception(exc)
            raise

    async def flush(self) -> None:
        """Wait until every message put before this call has been answered (not the ones put
        meanwhile: under load that would never end)."""
        waiting = [fut for fut in self.undelivered if not fut.done()]
        if not waiting:
            return
        if self.state != "running" or await self.wait_for_stopped(asyncio.wait(waiting)):
            state = self.state
            raise RuntimeError(f"Cannot flush: the producer buffer is {state} with {len(waiting)} messages undelivered")

    async def on_stop(self) -> None:
        """Nothing is sent once the buffer stops: what is left was put after the last commit
        (every commit flushes first)."""
        left = sum(not fut.done() for fut in self.undelivered)
        if left:
            log.warning("producer stopped with %d messages undelivered, put after the last commit", left)


class Producer(faust_aiokafka.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer = DeliveredBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.app
        if self.threaded_producer is not None:
            buffer.threaded_producer = self.threaded_producer
        self.buffer = buffer


def use_delivered_flush() -> None:
    """Make every Faust aiokafka producer created from now on flush to delivery."""
    faust_aiokafka.Transport.Producer = Producer
