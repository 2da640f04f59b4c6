"""The worker's HTTP API (Faust web): health, segments, portraits, users, recommendations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.web import Request, Response, View

from stream.contract.records import iso_ms
from stream.core.catalogue import titled
from stream.core.recommendations import recommend
from stream.factories import PROFILE_MAX_ITEMS, PROFILE_MAX_TERMS
from stream.worker.context import WorkerContext
from stream.worker.forget import forget_held
from stream.worker.model_sync import OwnerShell
from stream.worker.routing import user_route


def health(ctx: WorkerContext, owner: OwnerShell) -> dict[str, Any]:
    model, encoder = ctx.local.model, ctx.encoder
    return {
        "status": "ok",
        "ready": ctx.ready,
        "input_partitions": [f"{topic}:{partition}" for topic, partition in ctx.input_partitions()],
        "catalogue_items": len(ctx.catalogue),
        "catalogue_caught_up": ctx.catalogue.caught_up,  # read the item-vectors topic to its end at start
        "model": {"version": model.version, "seeded": model.seeded, "k": model.k, "owner": owner.active},
        "broker": {"answers": ctx.broker_healthy()},
        "failing": ctx.failures.reason() or None,  # the environment's failures (stream/worker/failures.py)
        "held_behaviours": ctx.pipeline.waiting.totals(),
        "replay": ctx.replay.progress() if ctx.replay.replaying else None,
        "encoder": {
            "model": ctx.settings.model_path or ctx.settings.model, "providers": encoder.providers,
            "precision": encoder.precision, "dim": encoder.dim,
            "readability": encoder.readability.to_doc(),  # unknown tokens (models/readability.py)
        },
        "counters": ctx.counters.as_dict(),
    }


def segments(ctx: WorkerContext) -> dict[str, Any]:
    model = ctx.local.model
    portraits = ctx.local.profiles.profiles(top=5, users=model.sizes)
    total = int(model.sizes.sum())
    return {
        "model_version": model.version,
        "seeded": model.seeded,
        "users_waiting_for_seed": 0 if model.seeded else len(model.reservoir),
        "segments": [
            {
                "id": i, "size": int(n), "share": int(n) / total if total else 0.0,
                "label": portraits[i]["label"], "evidence": portraits[i]["evidence"],
            }
            for i, n in enumerate(model.sizes)
        ],
        "model_events": [{**e, "ts": iso_ms(e["ts"])} for e in model.history[-10:]],  # the model keeps epoch s
    }


def segment_portrait(ctx: WorkerContext, segment: int, top: int) -> dict[str, Any]:
    """GET /segments/{id}: the profile's portrait, with the segment's size, its share of users and
    the titles of its items (looked up in this worker's catalogue: the model keeps ids only)."""
    model = ctx.local.model
    size, total = int(model.sizes[segment]), int(model.sizes.sum())
    portrait = ctx.local.profiles.profile(segment, top=top, users=size)
    titles = titled(ctx.catalogue, [i["item_id"] for i in portrait["top_items"]])
    return {
        "size": size,
        "share": size / total if total else 0.0,
        "model_version": model.version,
        **portrait,
        "top_items": [item | named for item, named in zip(portrait["top_items"], titles)],
    }


def recommendations(ctx: WorkerContext, user_id: str, k: int) -> dict[str, Any]:
    """GET /users/{id}/recommendations: stream/core/recommendations.py, items named by title."""
    state = ctx.users.get(user_id)
    segment = None if state is None else state.segment
    vector = None if state is None else state.vector
    acted = frozenset() if state is None else state.acted_on
    items = recommend(ctx.local.profiles, ctx.catalogue, segment, vector, acted, k)
    titles = titled(ctx.catalogue, [r.item_id for r in items])
    return {
        "user_id": user_id,
        "segment": segment,
        "source": "global popularity (cold user)" if segment is None else "segment popularity and the user's taste",
        "items": [r.to_doc() | named for r, named in zip(items, titles)],
    }


def whole_number(query: Mapping[str, str], name: str, default: int, lowest: int, highest: int) -> int:
    """Query parameter ``name`` (``default`` when absent); ValueError with the message of a 400
    unless it is a whole number from ``lowest`` to ``highest``."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lowest <= value <= highest:
        raise ValueError(f"{name} must be a whole number from {lowest} to {highest}, got {raw!r}")
    return value


def register(ctx: WorkerContext, owner: OwnerShell) -> None:
    app = ctx.app

    @app.page("/healthz")
    async def health_page(web: Any, request: Request) -> Response:
        return web.json(health(ctx, owner))

    @app.page("/segments")
    async def segments_page(web: Any, request: Request) -> Response:
        return web.json(segments(ctx))

    @app.page("/segments/{segment}")
    async def segment_page(web: Any, request: Request, segment: str) -> Response:
        model = ctx.local.model
        if not (segment.isascii() and segment.isdigit()) or int(segment) >= model.k:
            return web.json({"error": f"no segment {segment!r}; ids are 0..{model.k - 1}"}, status=404)
        try:
            top = whole_number(request.query, "top", 10, 1, max(PROFILE_MAX_TERMS, PROFILE_MAX_ITEMS))
        except ValueError as exc:
            return web.json({"error": str(exc)}, status=400)
        return web.json(segment_portrait(ctx, int(segment), top))

    @app.page("/users/{user_id}/recommendations")
    @user_route(ctx)
    async def recommendations_page(web: Any, request: Request, user_id: str) -> Response:
        try:
            k = whole_number(request.query, "k", 10, 1, 100)
        except ValueError as exc:
            return web.json({"error": str(exc)}, status=400)
        return web.json(recommendations(ctx, user_id, k))

    @app.page("/users/{user_id}")
    class UserPage(View):
        @user_route(ctx)
        async def get(self, request: Request, user_id: str) -> Response:
            state = ctx.users.get(user_id)
            if state is None:
                return self.json({"error": f"unknown user {user_id!r}"}, status=404)
            return self.json(state.public_view())

        @user_route(ctx)
        async def delete(self, request: Request, user_id: str) -> Response:
            """Forget the user (stream/worker/forget.py); ``found``: whether they had a row."""
            found = await forget_held(ctx, user_id)
            if found is None:
                return self.json({"error": "the user's partition is changing hands; try again"}, status=503)
            return self.json({"user_id": user_id, "forgotten": True, "found": found})
