"""Requests about one user go to the worker holding the user's row, by the id as stored."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from faust.exceptions import SameNode
from faust.web import Response

from stream.contract.records import pseudonym
from stream.worker.context import WorkerContext

Handler = Callable[..., Awaitable[Response]]


def user_route(ctx: WorkerContext) -> Callable[[Handler], Handler]:
    """Faust's ``table_route`` on the users table, keyed by the stored id (the pseudonym when
    ``SEGSTREAM_USER_ID_SALT`` is set, so the partition is the row's): the request is passed
    on to the worker holding the user, whose handler gets ``user_id`` as stored."""

    def decorate(fun: Handler) -> Handler:
        @functools.wraps(fun)
        async def routed(view: Any, request: Any, *args: Any, user_id: str, **kwargs: Any) -> Response:
            key = pseudonym(user_id, ctx.settings.user_id_salt)
            try:
                return await ctx.app.router.route_req(ctx.tables.users.name, key, view.web, request)
            except SameNode:
                return await fun(view, request, *args, user_id=key, **kwargs)

        return routed

    return decorate
