"""Client side of a worker's HTTP API, for commands that ask a running worker."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from stream.config import Settings


def get_json(settings: Settings, path: str, command: str, timeout_s: float = 10.0) -> Any:
    """The worker's JSON answer to GET ``path`` (with the bearer token when one is set);
    SystemExit with one line, naming ``command``, when there is none."""
    url = f"http://{settings.web_host}:{settings.web_port}{path}"
    headers = {"Authorization": f"Bearer {settings.http_token}"} if settings.http_token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error") or exc.reason
        except (ValueError, AttributeError):
            reason = exc.reason
        raise SystemExit(f"segstream {command}: {reason} (HTTP {exc.code} from {url})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SystemExit(
            f"segstream {command}: no worker answers at {url} ({reason}); start one or set --web-host/--web-port"
        ) from None
