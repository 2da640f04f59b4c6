"""Replay planning without a broker: a fresh replay's own topics and what it prints, and the
start offset for a timestamp checked against the records (Tansu answers 0 for older partitions)."""

from __future__ import annotations

import shlex

import pytest

from stream.cli import build_parser
from stream.config import Settings
from stream.replay import first_offset_at, fresh_settings, live_instructions, verified_start


class Records:
    """A partition whose record at each offset has the broker timestamp given (gaps: compacted)."""

    def __init__(self, timestamps: dict[int, int], end: int) -> None:
        self.timestamps, self.end, self.reads = timestamps, end, 0

    def __call__(self, offset: int) -> tuple[int, int] | None:
        self.reads += 1
        later = [o for o in self.timestamps if offset <= o < self.end]
        return (min(later), self.timestamps[min(later)]) if later else None


def rising(n: int, first_ts: int = 1000, gaps: tuple[int, ...] = ()) -> Records:
    return Records({o: first_ts + 10 * o for o in range(n) if o not in gaps}, n)


@pytest.mark.parametrize("ts", [0, 1000, 1005, 1010, 1500, 1990, 1991, 5000])
def test_the_first_offset_at_a_time_is_the_first_record_not_older(ts):
    records = rising(100)
    expected = next((o for o in range(100) if records.timestamps[o] >= ts), 100)
    assert first_offset_at(ts, 0, 100, records) == expected


def test_an_answer_of_zero_for_a_partition_of_older_records_becomes_its_end():
    records = rising(100)  # timestamps 1000 .. 1990
    assert verified_start(5000, 0, 100, 0, records) == 100


def test_a_wrong_answer_is_corrected_either_way_and_a_right_one_kept():
    records = rising(100)
    assert verified_start(1500, 0, 100, 0, records) == 50  # too low (Tansu)
    assert verified_start(1500, 0, 100, 80, records) == 50  # too high
    assert verified_start(1500, 0, 100, 50, records) == 50
    assert verified_start(500, 0, 100, 0, records) == 0  # every record is newer
    assert verified_start(1500, 0, 100, 100, records) == 50  # "none" (-1) while there are


def test_compacted_gaps_and_a_later_log_start_are_respected():
    records = rising(100, gaps=tuple(range(40, 60)))
    assert verified_start(1450, 0, 100, 0, records) in range(40, 61)  # seeking anywhere in the gap reads offset 60
    assert records(verified_start(1450, 0, 100, 0, records)) == (60, 1600)
    assert verified_start(1000, 30, 100, 30, rising(100)) == 30  # records before 30 are gone


def test_a_few_reads_find_the_offset_in_a_long_partition():
    records = rising(1_000_000)
    assert verified_start(1000 + 10 * 765_432, 0, 1_000_000, 0, records) == 765_432
    assert records.reads <= 25


def test_a_fresh_replay_names_its_topics_after_its_app_id_unless_it_publishes_to_live():
    live = Settings(app_id="shop", topic_changes="changes", topic_membership="members", topic_dead_letters="dead")
    fresh = fresh_settings(live, "20240501-7", publish_to_live=False)
    assert fresh.app_id == "shop-replay-20240501-7"
    names = ("model", "model_updates", "changes", "membership", "dead_letters")
    own = [getattr(fresh, f"topic_{name}") for name in names]
    assert own == [f"shop-replay-20240501-7-{name.replace('_', '-')}" for name in names]
    assert fresh.topic_reviews == live.topic_reviews and fresh.topic_items == live.topic_items
    to_live = fresh_settings(live, "20240501-7", publish_to_live=True)
    assert [to_live.topic_changes, to_live.topic_membership, to_live.topic_dead_letters] == ["changes", "members", "dead"]
    assert to_live.topic_model == "shop-replay-20240501-7-model"


def test_the_printed_commands_run_workers_and_watch_on_the_result():
    fresh = fresh_settings(Settings(app_id="shop", bootstrap="k1:9092"), "s", publish_to_live=False)
    lines = live_instructions(fresh)
    worker = next(shlex.split(line) for line in lines if line.strip().startswith("segstream worker"))
    args = build_parser().parse_args(worker[1:])
    for name in ("bootstrap", "app_id", "topic_model", "topic_model_updates", "topic_changes", "topic_membership",
                 "topic_dead_letters"):
        assert getattr(args, name) == getattr(fresh, name), name
    env = next(line for line in lines if "environment" in line)
    assert "SEGSTREAM_APP_ID=shop-replay-s " in env and "SEGSTREAM_TOPIC_MODEL=shop-replay-s-model " in env
    watch = next(shlex.split(line) for line in lines if line.strip().startswith("segstream watch"))
    args = build_parser().parse_args(watch[1:])
    assert (args.topic_changes, args.topic_membership, args.from_beginning) == (
        "shop-replay-s-changes", "shop-replay-s-membership", True,
    )


def test_publish_to_live_goes_with_fresh(capsys):
    args = build_parser().parse_args(["replay", "--publish-to-live"])
    with pytest.raises(SystemExit) as exit_:
        args.func(args)
    assert exit_.value.code == 2 and "--publish-to-live goes with --fresh" in capsys.readouterr().err
