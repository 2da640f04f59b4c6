"""Recommendation figures: popularity and item-kNN rankings, recall, precision, NDCG and coverage,
over plain mappings."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from models.profiles import SegmentProfiles
from stream.core.catalogue import Catalogue
from stream.core import recommendations
from stream.core.user_state import UserState

TOP_N = 10
ITEM_KNN_NEIGHBOURS = 50
"""Neighbours kept per item: the usual item-kNN setting, so rare co-occurrences do not add noise."""
SCORE_DECIMALS = 12
"""Item-kNN scores are rounded to this before ranking: sums that differ only by float order tie, by id."""


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
    catalogue: Catalogue,
    states: Mapping[str, UserState],
    heldout: Mapping[str, Iterable[str]],
    n: int = TOP_N,
) -> dict[str, list[str]]:
    """What GET /users/{id}/recommendations serves (stream/core/recommendations.py), from each
    user's row as the stream left it: segment, vector and the filter of items acted on."""
    recs = {}
    for user in heldout:
        state = states.get(user)
        if state is None:
            recs[user] = [r.item_id for r in recommendations.recommend(profiles, catalogue, None, None, frozenset(), n)]
        else:
            served = recommendations.recommend(profiles, catalogue, state.segment, state.vector, state.acted_on, n)
            recs[user] = [r.item_id for r in served]
    return recs


def recall_at_n(recs: Mapping[str, Sequence[str]], held: Mapping[str, Iterable[str]]) -> float:
    """Mean over users with held-out items of |recommended ∩ held-out| / |held-out|."""
    values = []
    for user, items in held.items():
        truth = set(items)
        if truth:
            values.append(len(truth & set(recs.get(user, ()))) / len(truth))
    return float(np.mean(values)) if values else 0.0


def precision_at_n(recs: Mapping[str, Sequence[str]], held: Mapping[str, Iterable[str]], n: int = TOP_N) -> float:
    """Mean over users with held-out items of |first ``n`` recommended ∩ held-out| / ``n``: a short
    list is charged for its empty places."""
    values = []
    for user, items in held.items():
        truth = set(items)
        if truth:
            values.append(len(truth & set(recs.get(user, ())[:n])) / n)
    return float(np.mean(values)) if values else 0.0


def ndcg_at_n(recs: Mapping[str, Sequence[str]], held: Mapping[str, Iterable[str]], n: int = TOP_N) -> float:
    """Mean over users with held-out items of binary-relevance DCG@``n`` (a hit at position p, from 0,
    gains 1/log2(p + 2)) over the best possible, min(``n``, |held-out|) hits at the top."""
    values = []
    for user, items in held.items():
        truth = set(items)
        if truth:
            dcg = sum(1 / math.log2(p + 2) for p, item in enumerate(recs.get(user, ())[:n]) if item in truth)
            ideal = sum(1 / math.log2(p + 2) for p in range(min(n, len(truth))))
            values.append(dcg / ideal)
    return float(np.mean(values)) if values else 0.0


def consumed_share(recs: Mapping[str, Sequence[str]], train: Mapping[str, Iterable[str]]) -> float:
    """Share of all recommended items that the user already has in training: a recommender that
    serves them back wastes those places."""
    total = consumed = 0
    for user, items in recs.items():
        seen = set(train.get(user, ()))
        total += len(items)
        consumed += sum(1 for item in items if item in seen)
    return consumed / total if total else 0.0


def short_lists(recs: Mapping[str, Sequence[str]], users: Iterable[str], n: int = TOP_N) -> int:
    """How many of ``users`` get fewer than ``n`` recommendations (a list that ran out)."""
    return sum(1 for user in users if len(recs.get(user, ())) < n)


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


def item_knn_recommendations(
    train: Mapping[str, Sequence[str]], users: Iterable[str], n: int = TOP_N
) -> dict[str, list[str]]:
    """The classic collaborative anchor: cosine item-item similarity over the binary user x item
    training matrix, each item's :data:`ITEM_KNN_NEIGHBOURS` nearest kept; a candidate scores the sum
    of its similarities to the user's training items. Top ``n`` with a positive score, not in the
    user's training items, ties by item id; a user without training items gets none."""
    items = sorted({item for seq in train.values() for item in seq}, key=id_key)
    rows = {user: r for r, user in enumerate(train)}
    recs: dict[str, list[str]] = {user: [] for user in users}
    known = [user for user in recs if user in rows]
    if not known:
        return recs
    matrix = _binary_matrix(train, {item: j for j, item in enumerate(items)})
    similarity = _top_k_rows(_cosine_similarity(matrix), ITEM_KNN_NEIGHBOURS)
    scores = (matrix[[rows[user] for user in known]] @ similarity).tocsr()
    for r, user in enumerate(known):
        candidates = scores.indices[scores.indptr[r] : scores.indptr[r + 1]]
        values = np.round(scores.data[scores.indptr[r] : scores.indptr[r + 1]], SCORE_DECIMALS)
        own = matrix.indices[matrix.indptr[rows[user]] : matrix.indptr[rows[user] + 1]]
        keep = (values > 0) & ~np.isin(candidates, own)
        order = np.lexsort((candidates[keep], -values[keep]))[:n]
        recs[user] = [items[j] for j in candidates[keep][order]]
    return recs


def _binary_matrix(train: Mapping[str, Sequence[str]], index: Mapping[str, int]) -> sp.csr_matrix:
    """Users (in ``train`` order) x items (columns by ``index``), 1 where the user has the item:
    a repeated interaction counts once."""
    row = [r for r, seq in enumerate(train.values()) for _ in seq]
    col = [index[item] for seq in train.values() for item in seq]
    matrix = sp.csr_matrix((np.ones(len(col)), (row, col)), shape=(len(train), len(index)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _entry_rows(matrix: sp.csr_matrix) -> np.ndarray:
    """The row of each stored entry of a CSR matrix, aligned with its ``data`` and ``indices``."""
    return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))


def _cosine_similarity(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Item x item cosine of the binary columns, |U_i ∩ U_j| / sqrt(|U_i| |U_j|), no self-similarity.

    The denominator is one product per pair, so sim(i, j) and sim(j, i) are the same float."""
    common = (matrix.T @ matrix).tocsr()
    common.setdiag(0)
    common.eliminate_zeros()
    degree = np.asarray(matrix.sum(axis=0)).ravel()
    common.data = common.data / np.sqrt(degree[_entry_rows(common)] * degree[common.indices])
    return common


def _top_k_rows(similarity: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest entries (ties by column, so by item id), the rest dropped."""
    rows = _entry_rows(similarity)
    order = np.lexsort((similarity.indices, -similarity.data, rows))
    rank = np.arange(len(order)) - similarity.indptr[rows[order]]
    kept = order[rank < k]
    return sp.csr_matrix((similarity.data[kept], (rows[kept], similarity.indices[kept])), shape=similarity.shape)
