"""The live page: ``GET /`` serves a page shipped in the package (stream/worker/static/: HTML, a
small script drawing SVG, CSS; nothing from the internet) that polls the JSON endpoints below,
which other tools can use as well (README, "Live page"). A segment's portrait comes from
``GET /segments/{id}`` (stream/worker/web.py).

- ``/api/segments?since=N``: id, label, size, share, the change since N model versions ago, and
  the changes into and out of each segment this worker published;
- ``/api/map``: centroids and a sample of this worker's users in two dimensions
  (models/projection.py: PCA on the centroids, still while they are);
- ``/api/feed?n=N``: the last change events this worker published and the model's events;
- ``/api/sizes``: the segment sizes of the last model versions this worker adopted.
"""

from __future__ import annotations

from importlib import resources
from collections.abc import Callable
from typing import Any

import numpy as np
from faust.web import Request, Response

from models.projection import StableProjection
from stream.contract.records import iso_ms
from stream.core.recent import MAX_CHANGES, MAX_VERSIONS
from stream.worker.context import WorkerContext
from stream.worker.web import whole_number

STATIC = resources.files("stream.worker") / "static"
# Path -> (file in STATIC, content type). None of them holds data: http_auth serves them without a token.
ASSETS = {
    "/": ("index.html", "text/html"),
    "/static/page.js": ("page.js", "text/javascript"),
    "/static/page.css": ("page.css", "text/css"),
}
MAP_USERS = 300  # users drawn on the map
MAP_SCAN = 6000  # rows of the table the sample is drawn from: a poll never walks a big table


def portraits(ctx: WorkerContext) -> list[dict[str, Any]]:
    return ctx.local.profiles.profiles(top=5, users=ctx.local.model.sizes)


def labels(ctx: WorkerContext) -> list[str]:
    return [p["label"] for p in portraits(ctx)]


def segments(ctx: WorkerContext, since: int) -> dict[str, Any]:
    model = ctx.local.model
    sizes = [int(n) for n in model.sizes]
    total = sum(sizes)
    before = ctx.recent.sizes_back(since)
    rows = [
        {
            "id": i,
            "label": portrait["label"],
            "evidence": portrait["evidence"],
            "size": size,
            "share": size / total if total else 0.0,
            "change": None if before is None else size - before["sizes"][i],
            "entered": ctx.tallies.entered[i],
            "left": ctx.tallies.left[i],
        }
        for i, (size, portrait) in enumerate(zip(sizes, portraits(ctx)))
    ]
    return {
        "model_version": model.version,
        "seeded": model.seeded,
        "users": total,
        "users_waiting_for_seed": 0 if model.seeded else len(model.reservoir),
        "change_since_version": None if before is None else before["version"],
        "segments": rows,
    }


def map_points(ctx: WorkerContext, projection: StableProjection) -> dict[str, Any]:
    model = ctx.local.model
    if model.centroids is None:
        return {"model_version": model.version, "seeded": False, "explained": [0.0, 0.0], "centroids": [], "users": []}
    projection.fit(model.centroids)
    names = labels(ctx)
    centres = projection.project(model.centroids)
    sample = ctx.users.sample(MAP_USERS, MAP_SCAN)
    points = projection.project(np.array([s.vector for s in sample])) if sample else np.zeros((0, 2))
    return {
        "model_version": model.version,
        "seeded": True,
        "explained": projection.explained,
        "centroids": [
            {"segment": i, "label": names[i], "size": int(model.sizes[i]), "x": float(x), "y": float(y)}
            for i, (x, y) in enumerate(centres)
        ],
        "users": [
            {"user_id": s.user_id, "segment": s.segment, "x": float(x), "y": float(y)}
            for s, (x, y) in zip(sample, points)
        ],
    }


def feed(ctx: WorkerContext, n: int) -> dict[str, Any]:
    """Newest first; model events' times as ISO-8601 UTC."""
    events = [
        {**e, "ts": iso_ms(e["ts"]) if isinstance(e.get("ts"), int | float) else e.get("ts")}
        for e in ctx.local.model.history[-n:]
    ]
    return {"changes": list(ctx.recent.changes)[-n:][::-1], "model_events": events[::-1]}


def sizes(ctx: WorkerContext) -> dict[str, Any]:
    return {"k": ctx.local.model.k, "labels": labels(ctx), "versions": list(ctx.recent.versions)}


def counted(web: Any, request: Request, parameter: tuple[str, int, int], answer: Callable[[int], Any]) -> Response:
    """``answer`` for the whole-number query ``parameter`` (name, default, most), or a 400 saying
    what is accepted."""
    name, default, most = parameter
    try:
        n = whole_number(request.query, name, default, 1, most)
    except ValueError as exc:
        return web.json({"error": str(exc)}, status=400)
    return web.json(answer(n))


def register(ctx: WorkerContext) -> None:
    app = ctx.app
    projection = StableProjection()

    for path, (name, content_type) in ASSETS.items():
        body = (STATIC / name).read_bytes()

        @app.page(path, name=f"live-page-{name}")
        async def asset(web: Any, request: Request, body: bytes = body, content_type: str = content_type) -> Response:
            return web.bytes(body, content_type=content_type, headers={"Cache-Control": "no-cache"})

    @app.page("/api/segments")
    async def segments_page(web: Any, request: Request) -> Response:
        return counted(web, request, ("since", 10, MAX_VERSIONS), lambda since: segments(ctx, since))

    @app.page("/api/map")
    async def map_page(web: Any, request: Request) -> Response:
        return web.json(map_points(ctx, projection))

    @app.page("/api/feed")
    async def feed_page(web: Any, request: Request) -> Response:
        return counted(web, request, ("n", 20, MAX_CHANGES), lambda n: feed(ctx, n))

    @app.page("/api/sizes")
    async def sizes_page(web: Any, request: Request) -> Response:
        return web.json(sizes(ctx))
