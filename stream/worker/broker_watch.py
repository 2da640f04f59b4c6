"""Whether this worker can reach its Kafka cluster, and what to do when it cannot.

Every few seconds a metadata request (off the event loop) tells whether the broker answers
and which cluster it is. Readiness (/healthz) requires a recent answer. An outage is logged
once when it starts and once when it ends; the worker reconnects by itself. It exits non-zero
with one clear line when the cluster it talks to is another one than at start (a restarted
embedded broker forgot every topic and offset: a restart begins afresh), or when the broker has
been away longer than ``SEGSTREAM_BROKER_DOWN_EXIT_S``. When Faust itself stops with an error
(a broker gone while the worker starts), the last line says what the broker did, if it explains it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import KafkaException

from stream.kafka import Cluster, admin
from stream.worker.context import WorkerContext, survive

log = logging.getLogger("segstream")

PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 1.5
HEALTHY_WITHIN_S = 3 * PROBE_EVERY_S + PROBE_TIMEOUT_S
HARD_EXIT_AFTER_S = 20.0  # a graceful stop can wait on a broker that is gone


class BrokerWatch:
    """The last answer of the cluster this worker started with."""

    def __init__(self, cluster: Cluster, cluster_id: str | None) -> None:
        self.cluster_id = cluster_id
        self.client = admin(cluster, log_level=0)  # the outage is logged here, once
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-watch")
        self.answered_at = time.monotonic()
        self.down_since: float | None = None
        self.other_cluster: str | None = None

    @property
    def healthy(self) -> bool:
        return time.monotonic() - self.answered_at < HEALTHY_WITHIN_S

    def probe(self) -> None:
        """One metadata request: the broker's answer, or its absence."""
        try:
            found = self.client.list_topics(timeout=PROBE_TIMEOUT_S).cluster_id
        except KafkaException:
            self.down_since = self.down_since or time.monotonic()
            return
        if self.down_since is not None:
            log.info("Kafka answers again after %.0f s", time.monotonic() - self.down_since)
            self.down_since = None
        self.answered_at = time.monotonic()
        if found != self.cluster_id:
            self.other_cluster = found


def exit_worker(ctx: WorkerContext, reason: str) -> None:
    """Stop the worker with ``reason`` as its last line and a non-zero status (run_worker)."""
    if ctx.exit_reason:
        return
    ctx.exit_reason = reason
    log.error("%s; stopping", reason)
    os.kill(os.getpid(), signal.SIGTERM)
    asyncio.get_running_loop().call_later(HARD_EXIT_AFTER_S, hard_exit, reason)


def hard_exit(reason: str) -> None:
    """A shutdown that hangs (Faust committing to a cluster that lost the topics) ends here, still
    with the reason as the last line."""
    print(f"segstream worker: {reason} (stopped without a clean shutdown after {HARD_EXIT_AFTER_S:g} s)",
          file=sys.stderr, flush=True)
    os._exit(1)


def other_cluster_reason(bootstrap: str, watch: BrokerWatch) -> str:
    return (
        f"the broker at {bootstrap} is another Kafka cluster now ({watch.cluster_id!r} at start, "
        f"{watch.other_cluster!r} now): its topics and offsets are not the ones this worker's tables follow"
    )


def reason_after_crash(bootstrap: str, watch: BrokerWatch, attempts: int = 3) -> str:
    """Why Faust stopped with an error, when the broker explains it (it went away while the
    worker started, say): another cluster, or no answer after ``attempts`` probes; "" when the
    broker is the one at start and answers."""
    for attempt in range(attempts):
        watch.probe()
        if watch.other_cluster is not None:
            return other_cluster_reason(bootstrap, watch)
        if watch.down_since is None:
            return ""
        if attempt + 1 < attempts:
            time.sleep(PROBE_EVERY_S / 2)
    return f"Kafka at {bootstrap} does not answer, and Faust stopped with an error (above)"


async def check(ctx: WorkerContext, watch: BrokerWatch) -> None:
    """Probe once; log an outage's start; stop the worker when it must (module docstring)."""
    settings = ctx.settings
    was_down = watch.down_since is not None
    await asyncio.get_running_loop().run_in_executor(watch.executor, watch.probe)
    if watch.down_since is not None and not was_down:
        log.error("Kafka at %s does not answer; not ready until it does", settings.bootstrap)
    if watch.other_cluster is not None:
        exit_worker(ctx, other_cluster_reason(settings.bootstrap, watch))
    down_for = 0.0 if watch.down_since is None else time.monotonic() - watch.down_since
    if settings.broker_down_exit_s and down_for > settings.broker_down_exit_s:
        exit_worker(ctx, f"Kafka at {settings.bootstrap} has not answered for {down_for:.0f} s (SEGSTREAM_BROKER_DOWN_EXIT_S)")


def register(ctx: WorkerContext, watch: BrokerWatch) -> None:
    @ctx.app.timer(interval=PROBE_EVERY_S)
    async def watch_broker() -> None:
        await survive("watching the broker", check(ctx, watch))
