"""``segstream explain USER``: ask a worker's HTTP API why a user is in their segment."""

from __future__ import annotations

import json
import sys
import urllib.parse
from typing import Any

from stream.config import Settings
from stream.tools.worker_api import get_json


def fetch(settings: Settings, user_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The worker's answer to GET /users/{id}/explain; SystemExit with one line when there is none."""
    return get_json(settings, f"/users/{urllib.parse.quote(user_id, safe='')}/explain", "explain", timeout_s)


def describe(answer: dict[str, Any]) -> str:
    """The explanation as lines a person reads."""
    lines = [f"user {answer['user_id']}: segment {answer['segment']}" + (f" ({answer['label']})" if answer.get("label") else "")]
    lines += [f"  {sentence}" for sentence in answer["summary"]]
    if answer["nearest"]:
        lines.append(f"nearest centroids ({answer['distance']}):")
        lines += [f"  segment {n['segment']}: {n['distance']:.4f}  {n['label']}" for n in answer["nearest"]]
    if answer["items"]:
        lines.append("items pulling toward the segment (cosine to its centroid):")
        lines += [
            f"  {i['similarity']:+.3f}  {i['title'] or i['item_id']}" + (f" ({', '.join(i['categories'])})" if i["categories"] else "")
            for i in answer["items"]
        ]
    return "\n".join(lines)


def run(settings: Settings, user_id: str, as_json: bool) -> int:
    answer = fetch(settings, user_id)
    print(json.dumps(answer, indent=2) if as_json else describe(answer), file=sys.stdout, flush=True)
    return 0
