"""Log lines: one format for segstream's, Faust's and the Kafka clients' (plain or JSON), and
readable when the broker is away: repeated client errors are summarised.

A client that cannot reach the broker retries every few hundred milliseconds and logs each
attempt (aiokafka, librdkafka, Faust's consumer): thousands of lines a minute saying the same.
:class:`Throttle` lets the first of a kind through, then one line per window that says how many
were held back.
"""

from __future__ import annotations

import logging
import logging.config
import time
from typing import Any

# librdkafka's own lines (confluent-kafka's "logger" option) go to this logger.
LIBRDKAFKA = logging.getLogger("segstream.librdkafka")
WINDOW_S = 30.0
NOISY = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender",
    "faust.transport.drivers.aiokafka",
    "faust.transport.consumer",
    LIBRDKAFKA.name,
)


class Throttle(logging.Filter):
    """The first record of each (logger, message) passes; repeats within ``window_s`` are
    counted, and the next one after the window says how many there were."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        super().__init__()
        self.window_s = window_s
        self.seen: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = (record.name, record.msg), time.monotonic()
        since, held = self.seen.get(key, (-self.window_s, 0))
        if now - since < self.window_s:
            self.seen[key] = (since, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.window_s:g} s)"
        self.seen[key] = (now, 0)
        return True


def throttle_client_logs(window_s: float = WINDOW_S) -> None:
    """Throttle the Kafka clients' loggers (a filter acts on its own logger only, so each one)."""
    throttle = Throttle(window_s)
    for name in NOISY:
        logging.getLogger(name).addFilter(throttle)


PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter(log_format: str) -> dict[str, Any]:
    """A logging.config formatter: ``plain`` text, or ``json`` (python-json-logger), one object a
    line with time, level, logger and message (and the traceback when there is one)."""
    if log_format == "json":
        return {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    return {"format": PLAIN}


def faust_logging_config(log_format: str) -> dict[str, Any]:
    """For ``faust.App(logging_config=...)``: Faust's own handlers (console or --logfile), with
    segstream's format in place of Faust's (merged into the config Faust builds)."""
    shared = formatter(log_format)
    return {"version": 1, "merge": True, "formatters": {"default": shared, "colored": shared}}


def configure(level: str, log_format: str) -> None:
    """Logging of a command that runs no Faust worker (load, watch, replay planning, ...)."""
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter(log_format)},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    })
