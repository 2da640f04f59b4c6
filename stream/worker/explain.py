"""GET /users/{id}/explain: why the user is in their segment (stream/core/explain.py), served
by the worker holding the user, as GET /users/{id} is."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response

from stream.core.explain import DigestIndex, explain
from stream.worker.context import WorkerContext
from stream.worker.routing import user_route


def register(ctx: WorkerContext) -> None:
    index = DigestIndex()  # item digests -> ids, rebuilt when the catalogue's size changes

    @ctx.app.page("/users/{user_id}/explain")
    @user_route(ctx)
    async def explain_page(web: Any, request: Request, user_id: str) -> Response:
        state = ctx.users.get(user_id)
        if state is None:
            return web.json({"error": f"unknown user {user_id!r}"}, status=404)
        labels = [p["label"] for p in ctx.local.profiles.profiles(top=5)]
        return web.json(explain(state, ctx.local.model, labels, ctx.catalogue, index.lookup(ctx.catalogue.rows.keys())))
