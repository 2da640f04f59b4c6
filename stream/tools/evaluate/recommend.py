"""Recommendation figures: popularity rankings, recall and coverage, over plain mappings."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

from models.profiles import SegmentProfiles

TOP_N = 10


def id_key(item: str) -> tuple[int, int, str]:
    """Sort key of an id: numeric ids by value, before the others by text."""
    return (0, int(item), "") if item.isdigit() else (1, 0, item)


def time_split(
    rows: Sequence[tuple[str, str, float]], fraction: float = 0.8
) -> tuple[list[int], dict[str, list[str]]]:
    """Split (user, item, ts) rows per user by time: the first ``fraction`` (floor) for training.

    A user's rows are ordered by (ts, item id). Returns the indices into ``rows`` of the training
    rows, ascending (so the input order, e.g. global time order, is kept), and each user's
    held-out items in time order.
    """
    per_user: dict[str, list[int]] = {}
    for index, (user, _, _) in enumerate(rows):
        per_user.setdefault(user, []).append(index)
    train: list[int] = []
    held: dict[str, list[str]] = {}
    for user, indices in per_user.items():
        indices.sort(key=lambda i: (rows[i][2], id_key(rows[i][1])))
        n_train = math.floor(len(indices) * fraction + 1e-9)
        train.extend(indices[:n_train])
        if indices[n_train:]:
            held[user] = [rows[i][1] for i in indices[n_train:]]
    train.sort()
    return train, held


def popularity_rankings(
    train: Mapping[str, Sequence[str]], groups: Mapping[str, Hashable] | None = None
) -> dict[Hashable, list[str]]:
    """Items of each group by the number of training interactions of the group's users with them.

    Ties by item id (:func:`id_key`). ``groups`` None: one global ranking under the key None.
    Users of ``train`` with no group are left out of the group rankings.
    """
    counts: dict[Hashable, Counter[str]] = {}
    for user, items in train.items():
        if groups is None:
            group: Hashable = None
        elif user in groups:
            group = groups[user]
        else:
            continue
        counts.setdefault(group, Counter()).update(items)
    return {
        group: sorted(counter, key=lambda item: (-counter[item], id_key(item)))
        for group, counter in counts.items()
    }


def recommend(ranking: Sequence[str], exclude: Iterable[str], n: int = TOP_N) -> list[str]:
    """The first ``n`` items of ``ranking`` not in ``exclude`` (fewer if the ranking runs out)."""
    skip = set(exclude)
    out: list[str] = []
    for item in ranking:
        if item not in skip:
            out.append(item)
            if len(out) == n:
                break
    return out


def popularity_recommendations(
    train: Mapping[str, Sequence[str]],
    users: Iterable[str],
    groups: Mapping[str, Hashable] | None = None,
    n: int = TOP_N,
) -> tuple[dict[str, list[str]], int]:
    """Top-``n`` within-group popular items for each of ``users``, minus their training items.

    Users without a group get the global ranking; returns (recommendations, such users).
    """
    rankings = popularity_rankings(train, groups)
    global_ranking = rankings[None] if groups is None else popularity_rankings(train)[None]
    recs: dict[str, list[str]] = {}
    fallback = 0
    for user in users:
        if groups is not None and user in groups and groups[user] in rankings:
            ranking = rankings[groups[user]]
        else:
            ranking = global_ranking
            if groups is not None:
                fallback += 1
        recs[user] = recommend(ranking, train.get(user, ()), n)
    return recs, fallback


def served_recommendations(
    profiles: SegmentProfiles,
    groups: Mapping[str, int],
    train: Mapping[str, Sequence[str]],
    heldout: Mapping[str, Iterable[str]],
    n: int = TOP_N,
) -> dict[str, list[str]]:
    """What GET /users/{id}/recommendations serves: the segment's decayed profile popularity
    (global for a user without a segment), minus the user's own training items."""
    return {user: profiles.popular_items(groups.get(user), n, set(train.get(user, ()))) for user in heldout}


def recall_at_n(recs: Mapping[str, Sequence[str]], held: Mapping[str, Iterable[str]]) -> float:
    """Mean over users with held-out items of |recommended ∩ held-out| / |held-out|."""
    values = []
    for user, items in held.items():
        truth = set(items)
        if truth:
            values.append(len(truth & set(recs.get(user, ()))) / len(truth))
    return float(np.mean(values)) if values else 0.0


def coverage_at_n(recs: Mapping[str, Sequence[str]], n_items: int) -> float:
    """|union of all recommendation lists| / number of items in the catalogue."""
    union: set[str] = set()
    for items in recs.values():
        union.update(items)
    return len(union) / n_items if n_items else 0.0


def mean_embeddings(
    train: Mapping[str, Sequence[str]], item_vectors: Mapping[str, np.ndarray]
) -> tuple[list[str], np.ndarray]:
    """Each user's plain (unweighted, undecayed, unnormalised) mean of their items' vectors."""
    users, rows = [], []
    for user in sorted(train, key=id_key):
        vectors = [item_vectors[i] for i in train[user] if i in item_vectors]
        if vectors:
            users.append(user)
            rows.append(np.mean(np.stack(vectors).astype(np.float64), axis=0))
    dim = len(next(iter(item_vectors.values()))) if item_vectors else 0
    return users, (np.stack(rows) if rows else np.zeros((0, dim)))
