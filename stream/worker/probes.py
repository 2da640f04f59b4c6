"""Kubernetes-style probes: ``/livez`` (the process and its event loop answer) and ``/readyz``
(503 until the worker has partitions and has recovered its tables, and while the broker is
away or a rebalance runs). ``/healthz`` keeps the detail."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response

from stream.worker.context import WorkerContext


def readiness(ctx: WorkerContext) -> tuple[bool, str]:
    """Whether to send this worker traffic, and why not."""
    if not ctx.broker_healthy():
        return False, "the broker does not answer"
    if ctx.failures.since:
        return False, ctx.failures.reason()
    if ctx.app.rebalancing:
        return False, "a rebalance is running"
    if not ctx.app.consumer.assignment():
        return False, "no partitions assigned yet"
    if not ctx.app.tables.recovery.completed.is_set():
        return False, "the tables are recovering from their changelogs"
    return True, "ready"


def register(ctx: WorkerContext) -> None:
    @ctx.app.page("/livez")
    async def livez(web: Any, request: Request) -> Response:
        return web.json({"status": "alive"})

    @ctx.app.page("/readyz")
    async def readyz(web: Any, request: Request) -> Response:
        ready, why = readiness(ctx)
        return web.json({"ready": ready, "reason": why}, status=200 if ready else 503)
