"""Readiness reasons, dead-letter reason labels, and the log formats (no worker needed)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from stream.logs import formatter
from stream.worker.failures import Failures
from stream.worker.output import reason_of
from stream.worker.probes import readiness


def context(
    broker: bool = True, rebalancing: bool = False, assigned: bool = True, recovered: bool = True, failing: str = ""
):
    recovery = SimpleNamespace(completed=SimpleNamespace(is_set=lambda: recovered))
    app = SimpleNamespace(rebalancing=rebalancing, consumer=SimpleNamespace(assignment=lambda: {1} if assigned else set()),
                          tables=SimpleNamespace(recovery=recovery))
    failures = Failures(exit_after_s=60)
    if failing:
        failures.failed("applying events", failing)
    return SimpleNamespace(broker_healthy=lambda: broker, app=app, failures=failures)


def test_readiness_says_why_not():
    assert readiness(context()) == (True, "ready")
    assert readiness(context(broker=False)) == (False, "the broker does not answer")
    assert readiness(context(rebalancing=True))[0] is False
    assert readiness(context(assigned=False)) == (False, "no partitions assigned yet")
    assert readiness(context(recovered=False))[1].startswith("the tables are recovering")
    disk_full = "the table store failed: IO error: No space left on device"
    assert readiness(context(failing=disk_full)) == (False, f"applying events: {disk_full}")


def test_dead_letter_reasons_are_a_few_labels():
    assert reason_of("ts 1714557600000000 is year 56300, more than 1 day ahead") == "event_time"
    assert reason_of("value is not JSON: Expecting value") == "not_json"
    assert reason_of("message key b'x' is not the event's user_id 'y'") == "key_not_id"
    assert reason_of("item 'i9' is not in the catalogue; the behaviour was held while ...") == "held_too_long"
    assert reason_of("item text is empty after cleaning") == "empty_text"
    assert reason_of("behavior schema: data.action must be one of ...") == "schema"


def test_json_log_lines_are_one_object_each_with_time_level_logger_message():
    record = logging.LogRecord("segstream", logging.INFO, __file__, 1, "model %s: version %d", ("seed", 1), None)
    config = formatter("json")
    cls = config.pop("()")
    module, name = cls.rsplit(".", 1)
    line = getattr(__import__(module, fromlist=[name]), name)(**config).format(record)
    doc = json.loads(line)
    assert doc["message"] == "model seed: version 1" and doc["level"] == "INFO" and doc["logger"] == "segstream" and doc["time"]
    assert formatter("plain") == {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
