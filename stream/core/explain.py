"""Why a user is in their segment, in words: the nearest centroids, the hysteresis margin (a
share of the nearest centroid's distance) that kept or moves them, and which of their own items
pull most toward the segment.

Distances are the model's own (:meth:`models.clustering.StreamingKMeans.predict`): Euclidean,
between the user's unit vector and each centroid. Centroids are means of unit vectors, so they
are not unit themselves, and the distance is not ``1 - cos`` (for a unit centroid it would be
``sqrt(2 (1 - cos))``). An item's pull is the cosine between its unit vector and the segment's
centroid direction. The user's row lists only 4-byte digests of the latest items acted on
(:mod:`stream.core.user_state`): they are matched back to ids by digesting the catalogue's ids
(:class:`DigestIndex`). Review texts are not kept per user, so no review terms can be given.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from models.clustering import StreamingKMeans, squared_distances
from stream.core.catalogue import Catalogue
from stream.core.acted_items import item_digest
from stream.core.user_state import UserState

NEAREST = 3
TOP_ITEMS = 5
DISTANCE = "Euclidean, from the user's unit vector to each centroid (the model's own; not 1 - cosine)"


class DigestIndex:
    """Item digest -> the catalogue ids with that digest, rebuilt when the catalogue's size
    changes (a per-request explain can afford one pass over the catalogue now and then)."""

    def __init__(self) -> None:
        self.size = -1
        self.ids: dict[int, list[str]] = {}

    def lookup(self, keys: Collection[bytes]) -> dict[int, list[str]]:
        """The index over ``keys`` (the catalogue rows' keys: item ids as UTF-8)."""
        if len(keys) != self.size:
            ids: dict[int, list[str]] = {}
            for key in list(keys):
                item_id = key.decode("utf-8", "replace")
                ids.setdefault(item_digest(item_id), []).append(item_id)
            self.ids, self.size = ids, len(keys)
        return self.ids


def verdict(segment: int, ranked: list[tuple[int, float]], margin: float, reseeded: Collection[int]) -> tuple[str, str]:
    """(kept | nearest | moves, a sentence) for a user in ``segment`` with centroids
    ``ranked`` nearest first as (segment, distance): the rule of ``StreamingKMeans.predict``."""
    best, best_d = ranked[0]
    here = dict(ranked)[segment]
    if best == segment:
        runner = f"; the next, segment {ranked[1][0]}, is {ranked[1][1] - here:.3f} farther" if len(ranked) > 1 else ""
        return "nearest", f"in segment {segment} because its centroid is the nearest (distance {here:.3f}){runner}"
    gap = here - best_d
    if best in reseeded:
        return "moves", (
            f"moves from segment {segment} to segment {best}: it is {gap:.3f} closer and was just re-seeded, "
            "so the margin does not hold the user back"
        )
    allowed = margin * best_d
    if gap <= allowed:
        return "kept", (
            f"kept in segment {segment} although segment {best} is {gap:.3f} closer: the margin is {allowed:.3f} "
            f"({margin:.0%} of that centroid's distance {best_d:.3f})"
        )
    return "moves", (
        f"moves from segment {segment} to segment {best} at the next assignment: it is {gap:.3f} closer, "
        f"more than the margin {allowed:.3f} ({margin:.0%} of its distance {best_d:.3f})"
    )


def item_pulls(
    state: UserState, centroid: np.ndarray, catalogue: Catalogue, index: dict[int, list[str]]
) -> tuple[list[dict[str, Any]], int]:
    """The user's remembered items that the catalogue still knows, by cosine to ``centroid``
    (highest first), and how many digests matched no single item (unknown or ambiguous)."""
    direction = centroid / (np.linalg.norm(centroid) or 1.0)
    found, unresolved = [], 0
    for digest in reversed(state.items):  # newest first: ties keep recency order
        ids = index.get(digest, [])
        item = catalogue.get(ids[0]) if len(ids) == 1 else None
        if item is None:
            unresolved += 1
            continue
        found.append({
            "item_id": ids[0],
            "title": item.title or None,
            "categories": list(item.categories),
            "similarity": round(float(np.dot(item.vector, direction)), 4),
        })
    found.sort(key=lambda row: -row["similarity"])
    return found, unresolved


def _name(item: dict[str, Any]) -> str:
    title = item["title"] or item["item_id"]
    return f"'{title}'" + (f" ({', '.join(item['categories'])})" if item["categories"] else "")


def explain(
    state: UserState,
    model: StreamingKMeans,
    labels: Sequence[str],
    catalogue: Catalogue,
    index: dict[int, list[str]],
    top_items: int = TOP_ITEMS,
) -> dict[str, Any]:
    """The explanation GET /users/{id}/explain serves; ``summary`` says it in sentences."""
    out: dict[str, Any] = {
        "user_id": state.user_id, "segment": state.segment, "model_version": model.version,
        "assigned_under_version": state.model_version, "distance": DISTANCE, "margin": model.params.margin,
        "nearest": [], "decision": None, "items": [], "items_unresolved": 0, "review_terms": [],
        "reviews": state.reviews,
    }
    vector = state.vector
    summary = []
    if model.centroids is None or vector is None or state.segment is None:
        out["decision"] = "unassigned"
        summary.append("no segment yet: " + (
            "the model is not seeded" if model.centroids is None
            else "no event with a vector" if vector is None else "the next sweep assigns one"
        ))
    else:
        d = np.sqrt(squared_distances(vector[None, :], model.centroids)[0])
        order = np.argsort(d, kind="stable")
        ranked = [(int(i), float(d[i])) for i in order]
        out["nearest"] = [{"segment": s, "label": labels[s], "distance": round(x, 4)} for s, x in ranked[:NEAREST]]
        out["label"] = labels[state.segment]
        out["decision"], why = verdict(state.segment, ranked, model.params.margin, model.reseeded)
        summary.append(why)
        out["items"], out["items_unresolved"] = item_pulls(state, model.centroids[state.segment], catalogue, index)
        out["items"] = out["items"][:top_items]
        if out["items"]:
            summary.append(f"{_name(out['items'][0])} is the closest of your items to this segment")
        else:
            summary.append("none of your recent items is known to the catalogue")
    summary.append(
        "no review terms: reviews are not kept per user" + (f" ({state.reviews} counted)" if state.reviews else "")
    )
    out["summary"] = summary
    return out
