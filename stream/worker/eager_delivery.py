"""Hand each fetched record to its stream without four asyncio tasks per record.

Faust's consumer loop delivers every record with ``await self.wait_first(callback(message),
self.suspend_flow.wait())``: mode's ``wait_first`` wraps the delivery, the flow-suspension
wait and the consumer's stopped and crashed events in a task each, waits for the first, and
cancels the other three. Measured on a worker that does nothing with its records, that was
about a third of its CPU per record. Almost always the delivery finishes without waiting
(it puts the event on a stream's queue that has room), so we run its first step at once, as
Python 3.12's eager tasks do: a delivery that finished is a done future, and ``wait_first``
returns it without any task; one that must wait goes on in a task, and ``wait_first`` races
it against the suspension and the stop as before.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from mode.services import WaitResults

Delivery = Callable[[Any], Coroutine[Any, Any, Any]]


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], awaited: Any) -> Generator[Any, Any, Any]:
    """Drive ``coro`` on from its first step, which stopped on ``awaited``, as a task would."""
    while True:
        try:
            sent = yield awaited
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # a cancellation or an error thrown in by the task
            try:
                awaited = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                awaited = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def eager(deliver: Delivery) -> Callable[[Any], asyncio.Future[Any]]:
    """``deliver`` started at once: a done future when it finished in its first step, else a
    task that carries on from where it stopped."""

    def start(message: Any) -> asyncio.Future[Any]:
        coro = deliver(message)
        try:
            awaited = coro.send(None)
        except StopIteration as stop:
            return _done(result=stop.value)
        except Exception as exc:
            return _done(error=exc)
        return asyncio.ensure_future(_resume(coro, awaited))

    return start


def _done(result: Any = None, error: BaseException | None = None) -> asyncio.Future[Any]:
    future = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
    return future


def finished_first(first: Awaitable[Any], others: tuple[Any, ...], stopped: bool) -> WaitResults | None:
    """What ``wait_first(first, *others)`` returns when ``first`` is already done and the
    service is running (the coroutines it will not await are closed); None otherwise."""
    if stopped or not isinstance(first, asyncio.Future) or not first.done():
        return None
    for other in others:
        if asyncio.iscoroutine(other):
            other.close()
    return WaitResults([first], [first.result()], False)
