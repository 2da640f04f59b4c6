"""Optional bearer-token authentication of the worker's HTTP API (``SEGSTREAM_HTTP_TOKEN``).

One aiohttp middleware in front of every page, Faust's own views included, so no page can be
added without it. The probes and the metrics stay open: Kubernetes and Prometheus call them
without credentials, and they say nothing about any user. Requests a worker routes to the
worker holding a user (``table_route``) carry the caller's headers, so they pass there too.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

# Pages served without a token: the live page's files hold no data (it asks /api/* with the token).
OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/", "/static/page.js", "/static/page.css"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def middlewares(token: str) -> list[Any]:
    """The aiohttp middlewares for ``token`` (none when it is empty: authentication off)."""
    if not token:
        return []
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if request.path in OPEN_PATHS or hmac.compare_digest(given, expected):
            return await handler(request)
        return web.json_response(
            {"error": "this page needs Authorization: Bearer <SEGSTREAM_HTTP_TOKEN>"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="segstream"'},
        )

    return [bearer_token]
