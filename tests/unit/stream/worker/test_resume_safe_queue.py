"""The changelog queue keeps, when the flow resumes, what was fetched after its partition's last seek."""

import asyncio
from types import SimpleNamespace

from faust.types import TP
from mode.utils.queues import FlowControlEvent

from stream.worker.recovery import ResumeSafeQueue

STANDBY = TP("app-users-changelog", 2)
ACTIVE = TP("app-users-changelog", 0)


def record(tp: TP, offset: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))


def drain(queue: ResumeSafeQueue) -> list[tuple[int, int]]:
    taken = []
    while not queue.empty():
        event = queue.get_nowait()
        taken.append((event.message.tp.partition, event.message.offset))
    return taken


def test_records_fetched_after_their_partitions_seek_survive_a_resume() -> None:
    async def scenario() -> list[tuple[int, int]]:
        flow = FlowControlEvent()
        queue = ResumeSafeQueue(maxsize=100, flow_control=flow, clear_on_resume=True)
        queue.force_put_nowait(record(STANDBY, 40))  # fetched before the seek: stale
        queue.force_put_nowait(record(ACTIVE, 7))
        queue.seeking([STANDBY])
        queue.force_put_nowait(record(STANDBY, 0))
        queue.force_put_nowait(record(ACTIVE, 8))  # its partition was not sought again
        queue.force_put_nowait(record(STANDBY, 1))
        flow.suspend()
        flow.resume()  # Faust's resume clears every managed queue
        return drain(queue)

    assert asyncio.run(scenario()) == [(2, 0), (2, 1)]


def test_a_cleared_queue_keeps_counting_and_a_new_seek_drops_older_records() -> None:
    async def scenario() -> list[tuple[int, int]]:
        flow = FlowControlEvent()
        queue = ResumeSafeQueue(maxsize=100, flow_control=flow, clear_on_resume=True)
        queue.seeking([STANDBY])
        queue.force_put_nowait(record(STANDBY, 0))
        assert drain(queue) == [(2, 0)]
        queue.force_put_nowait(record(STANDBY, 1))
        queue.seeking([STANDBY, ACTIVE])
        queue.force_put_nowait(record(ACTIVE, 3))
        queue.clear()
        return drain(queue)

    assert asyncio.run(scenario()) == [(0, 3)]
