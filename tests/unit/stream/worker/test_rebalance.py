"""The one script per moment of partitions coming and going (stream/worker/rebalance.py),
driven with participants that write down what they were asked, in order."""

import asyncio

from faust.types import TP

from stream.worker.rebalance import Choreography, Participants
from stream.worker.unflushed import UnflushedPartitions

INPUTS = ("reviews", "behaviors")
UPDATES = "model-updates"


def tp(topic, partition):
    return TP(topic, partition)


class Recorder:
    def __init__(self, tmp_path, flush_fails=False):
        self.calls = []
        self.flush_fails = flush_fails
        self.rows = asyncio.Lock()
        UnflushedPartitions(tmp_path).mark({5})  # left by a worker that died: only a wipe clears it
        self.unflushed = UnflushedPartitions(tmp_path)
        self.unflushed.mark({0, 1})

    async def flush(self):
        self.calls.append(("producer", self.rows.locked()))
        if self.flush_fails:
            raise RuntimeError("broker gone")

    async def publish(self):
        self.calls.append(("owner.publish", self.rows.locked()))

    def choreography(self):
        parts = Participants(
            rows=self.rows, flush=self.flush, unflushed=self.unflushed,
            forget_census=lambda partitions: self.calls.append(("census", sorted(partitions))),
            publish_model=self.publish, own_model=lambda owns: self.calls.append(("owner.own", owns)),
            held_stale=lambda: self.calls.append(("held", None)),
            positions_reset=lambda: self.calls.append(("positions", None)),
        )
        return Choreography(parts, INPUTS, UPDATES)


def test_a_revoke_flushes_holding_the_rows_then_unmarks_forgets_counts_and_publishes(tmp_path):
    seen = Recorder(tmp_path)
    revoked = {tp("behaviors", 1), tp("reviews", 1), tp("app-users-changelog", 1), tp(UPDATES, 0)}
    asyncio.run(seen.choreography().revoke(revoked))
    assert seen.calls == [("producer", True), ("census", [1]), ("owner.publish", False)]
    assert seen.unflushed.marked() == {5}


def test_a_revoke_whose_flush_fails_leaves_the_partitions_marked(tmp_path):
    seen = Recorder(tmp_path, flush_fails=True)
    asyncio.run(seen.choreography().revoke({tp("behaviors", 0)}))
    assert seen.unflushed.marked() == {0, 1, 5}
    assert [c[0] for c in seen.calls] == ["producer", "census", "owner.publish"]


def test_an_assignment_notes_ownership_a_stale_index_and_unknown_positions(tmp_path):
    seen = Recorder(tmp_path)
    asyncio.run(seen.choreography().assign({tp("behaviors", 0), tp(UPDATES, 0)}))
    asyncio.run(seen.choreography().assign({tp("behaviors", 0)}))
    assert seen.calls == [
        ("owner.own", True), ("held", None), ("positions", None),
        ("owner.own", False), ("held", None), ("positions", None),
    ]


def test_a_revoke_waits_for_the_writer_holding_the_rows(tmp_path):
    seen = Recorder(tmp_path)

    async def scenario():
        await seen.rows.acquire()  # a sweep chunk in flight
        revoke = asyncio.create_task(seen.choreography().revoke({tp("behaviors", 0)}))
        await asyncio.sleep(0.01)
        assert seen.calls == []  # nothing flushed while rows are being written
        seen.calls.append(("sweep done", None))
        seen.rows.release()
        await revoke

    asyncio.run(scenario())
    assert seen.calls[:2] == [("sweep done", None), ("producer", True)]


def test_a_shutdown_keeps_the_rows_publishes_flushes_and_unmarks(tmp_path):
    seen = Recorder(tmp_path)
    asyncio.run(seen.choreography().shutdown())
    assert seen.calls == [("owner.publish", True), ("producer", True)]
    assert seen.rows.locked()  # no writer gets the rows after this
    assert seen.unflushed.marked() == {5}
