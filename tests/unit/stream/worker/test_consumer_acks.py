"""Acks Faust's streams give while a rebalance stops the flow, or for records fetched in an
earlier generation, release the record without letting its offset be committed
(stream/worker/consumer_patch.py, adjustment 6); changelog records Faust fetched but dropped
are found so that their partition is moved back to them (adjustment 7)."""

import asyncio
from types import SimpleNamespace

from faust.types import TP

from stream.worker.consumer_patch import acked_in_flow, first_dropped, release_uncommitted


def app(active: bool, generation: int) -> SimpleNamespace:
    return SimpleNamespace(flow_control=SimpleNamespace(is_active=lambda: active), consumer_generation_id=generation)


class Message(SimpleNamespace):
    __hash__ = object.__hash__


def message(generation: int) -> Message:
    return Message(generation_id=generation, acked=False)


def test_only_an_ack_given_while_the_flow_runs_in_the_records_generation_may_be_committed():
    assert acked_in_flow(app(True, 3), message(3))
    assert not acked_in_flow(app(False, 3), message(3))  # a rebalance or a shutdown stopped the flow
    assert not acked_in_flow(app(True, 4), message(3))  # fetched before the last assignment


def test_a_released_record_is_no_longer_waited_for_and_not_marked_safe_to_commit():
    async def release() -> None:
        waiting = asyncio.get_running_loop().create_future()
        skipped, other = message(3), message(3)
        consumer = SimpleNamespace(_unacked_messages={skipped, other}, _waiting_for_ack=waiting, _acked={})
        release_uncommitted(consumer, skipped)
        assert skipped.acked and consumer._unacked_messages == {other} and consumer._acked == {}
        assert waiting.done()  # Faust's wait for the streams to empty moves on

    asyncio.run(release())


def test_changelog_records_faust_did_not_hand_on_are_found_per_partition():
    standby, active, inputs = TP("app-users-changelog", 2), TP("app-users-changelog", 0), TP("app-behaviors", 1)
    offsets = {standby: [43, 44, 45], active: [7, 8, 9], inputs: [100, 101]}
    fetched = {t: [SimpleNamespace(offset=o) for o in os] for t, os in offsets.items()}
    # the standby partition was paused (none handed on), the flow stopped after offset 7
    assert first_dropped(fetched, {active: 7, inputs: 100}, {"app-users-changelog"}) == {standby: 43, active: 8}
    assert first_dropped(fetched, {standby: 45, active: 9}, {"app-users-changelog"}) == {}
