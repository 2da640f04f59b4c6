"""``segstream evaluate``: the worker's incremental code path over a file of contract events, offline.

No broker: a JSONL file of contract events (items, reviews, behaviours) is fed through the same
:class:`~stream.pipeline.Pipeline` the Faust agent uses (``prepare`` -> encode -> ``apply``, the
model owner's update, sweeps), in micro-batches of ``SEGSTREAM_BATCH_SIZE``, by
:class:`~stream.pipeline.LocalRun`: a dict stands in for the ``users`` table (rows stored as
:meth:`UserState.to_bytes`, as the table does) and one for the ``item-vectors`` global table. The final user vectors and segments, i.e.
what the service would serve, are then scored against a batch k-means on the same vectors and,
when given, against reference labels; with held-out items, a segment-popularity recommender is
scored too.

The metric and recommendation functions are plain functions over arrays and mappings, so they can
be unit-tested and reused.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.profiles import SegmentProfiles
from models.segmentation import new_segmentation
from stream.catalogue import CatalogueItem
from stream.config import Settings, load_settings
from stream.pipeline import LocalRun, Message, Pipeline, catalogue_text
from stream.records import InvalidEvent
from stream.user_state import UserState

SILHOUETTE_SAMPLE = 5000
TOP_N = 10
SUGGEST_RULE = "rule: the highest mean silhouette (cosine) of the final streaming segments"


# --------------------------------------------------------------------------------------------
# Clustering metrics: plain functions over numpy arrays.
# --------------------------------------------------------------------------------------------


def nearest_labels(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) of every row of ``x``."""
    return np.argmin(_squared_distances(x, centroids), axis=1)


def _squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(centroids, dtype=np.float64)
    out = np.empty((x.shape[0], c.shape[0]), dtype=np.float64)
    for j in range(c.shape[0]):  # one centroid at a time: exact, and n x dim memory only
        diff = x - c[j]
        out[:, j] = np.einsum("nd,nd->n", diff, diff)
    return out


def inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    """Sum over rows of the squared Euclidean distance to the nearest centroid."""
    if len(x) == 0:
        return 0.0
    return float(_squared_distances(x, centroids).min(axis=1).sum())


def batch_kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn KMeans(n_clusters=k, n_init, random_state=seed) on ``x``: (labels, centers)."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(np.asarray(x, dtype=np.float64))
    return km.labels_.astype(np.int64), km.cluster_centers_


def inertia_ratio(x: np.ndarray, stream_centroids: np.ndarray, batch_centroids: np.ndarray) -> float:
    """Inertia of the streaming centroids over that of the batch centroids (>= 1: batch is better)."""
    denominator = inertia(x, batch_centroids)
    numerator = inertia(x, stream_centroids)
    if denominator == 0.0:
        return 1.0 if numerator == 0.0 else math.inf
    return numerator / denominator


def _n_labels_ok(labels: np.ndarray) -> bool:
    n = len(np.unique(labels))
    return 2 <= n <= len(labels) - 1


def sample_indices(n: int, size: int = SILHOUETTE_SAMPLE, seed: int = 0) -> np.ndarray:
    """A fixed random sample (sorted) of at most ``size`` of ``n`` rows; all rows if n <= size."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def silhouette(x: np.ndarray, labels: np.ndarray, sample: int = SILHOUETTE_SAMPLE, seed: int = 0) -> float | None:
    """Mean silhouette, cosine distance, on a fixed random sample of at most ``sample`` rows.

    None when the (sampled) labels do not have between 2 and n - 1 distinct values.
    """
    from sklearn.metrics import silhouette_score

    idx = sample_indices(len(x), sample, seed)
    xs, ls = np.asarray(x)[idx], np.asarray(labels)[idx]
    if not _n_labels_ok(ls):
        return None
    return float(silhouette_score(xs, ls, metric="cosine"))


def calinski_harabasz(x: np.ndarray, labels: np.ndarray) -> float | None:
    from sklearn.metrics import calinski_harabasz_score

    if not _n_labels_ok(np.asarray(labels)):
        return None
    return float(calinski_harabasz_score(np.asarray(x, dtype=np.float64), labels))


def davies_bouldin(x: np.ndarray, labels: np.ndarray) -> float | None:
    from sklearn.metrics import davies_bouldin_score

    if not _n_labels_ok(np.asarray(labels)):
        return None
    return float(davies_bouldin_score(np.asarray(x, dtype=np.float64), labels))


def nmi(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Normalized mutual information (arithmetic normalisation, scikit-learn's default)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(list(a), list(b)))


def ari(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Adjusted Rand index."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(list(a), list(b)))


def clustering_metrics(
    x: np.ndarray,
    segments: np.ndarray,
    stream_centroids: np.ndarray,
    k: int,
    seed: int = 0,
    truth: Sequence[Hashable | None] | None = None,
    batch: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float | int | None]:
    """All clustering figures for final vectors ``x`` and served segments ``segments``.

    ``truth``: reference labels aligned with ``x`` (None where a user has none). ``batch``: a
    precomputed :func:`batch_kmeans` result, to reuse across runs with the same ``x``.
    """
    labels_batch, centers_batch = batch if batch is not None else batch_kmeans(x, k, seed)
    out: dict[str, float | int | None] = {
        "users": int(len(x)),
        "segments_used": int(len(np.unique(segments))),
        "inertia_stream": inertia(x, stream_centroids),
        "inertia_batch": inertia(x, centers_batch),
        "inertia_ratio": inertia_ratio(x, stream_centroids, centers_batch),
        "silhouette": silhouette(x, segments, seed=seed),
        "calinski_harabasz": calinski_harabasz(x, segments),
        "davies_bouldin": davies_bouldin(x, segments),
        "nmi_vs_batch": nmi(segments, labels_batch),
        "ari_vs_batch": ari(segments, labels_batch),
    }
    if truth is not None:
        known = np.array([t is not None for t in truth], dtype=bool)
        ref = [t for t in truth if t is not None]
        out["labelled_users"] = int(known.sum())
        if known.any():
            out["nmi_vs_labels"] = nmi(segments[known], ref)
            out["ari_vs_labels"] = ari(segments[known], ref)
            out["batch_nmi_vs_labels"] = nmi(labels_batch[known], ref)
            out["batch_ari_vs_labels"] = ari(labels_batch[known], ref)
    return out


# --------------------------------------------------------------------------------------------
# Recommendation metrics: plain functions over mappings.
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Reading a file of contract events.
# --------------------------------------------------------------------------------------------


def event_kind(doc: Any) -> str | None:
    """Which contract event a JSON value is: "behavior" (has "action"), "review" (has "text"),
    "item" (has "title"), else None."""
    if not isinstance(doc, dict):
        return None
    if "action" in doc:
        return "behavior"
    if "text" in doc:
        return "review"
    if "title" in doc:
        return "item"
    return None


@dataclass(frozen=True, slots=True)
class StreamLine:
    line_no: int
    kind: str  # "review" | "behavior"
    user_id: str | None
    item_id: str | None
    value: bytes

    @property
    def key(self) -> bytes | None:
        return None if self.user_id is None else self.user_id.encode()


@dataclass
class EventFile:
    path: str
    items: list[tuple[int, bytes]] = field(default_factory=list)
    stream: list[StreamLine] = field(default_factory=list)
    not_json: int = 0
    unrecognised: int = 0

    @property
    def users(self) -> list[str]:
        return list(dict.fromkeys(line.user_id for line in self.stream if line.user_id is not None))

    def counts(self) -> dict[str, int]:
        kinds = Counter(line.kind for line in self.stream)
        return {
            "items": len(self.items),
            "reviews": kinds.get("review", 0),
            "behaviors": kinds.get("behavior", 0),
            "users": len(self.users),
            "not_json": self.not_json,
            "unrecognised": self.unrecognised,
        }


def _ident(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return None if value is None else str(value)


def read_events(path: str | Path) -> EventFile:
    """Sort a JSONL file's lines into items and (review / behaviour) stream lines, in file order."""
    out = EventFile(str(path))
    with open(path, "rb") as handle:
        for line_no, line in enumerate(handle, 1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                doc = json.loads(raw)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                out.not_json += 1
                continue
            kind = event_kind(doc)
            if kind is None:
                out.unrecognised += 1
            elif kind == "item":
                out.items.append((line_no, raw))
            else:
                out.stream.append(StreamLine(line_no, kind, _ident(doc, "user_id"), _ident(doc, "item_id"), raw))
    return out


def read_labels(path: str | Path) -> dict[str, str]:
    """``user_id,label`` CSV (with that header) -> {user: label}."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"user_id", "label"} <= set(reader.fieldnames):
            raise SystemExit(f"{path}: expected a CSV with header user_id,label")
        return {row["user_id"]: row["label"] for row in reader}


def read_heldout(path: str | Path) -> dict[str, list[str]]:
    """``user_id,item_id`` CSV (with that header) -> {user: [held-out items]}."""
    held: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"user_id", "item_id"} <= set(reader.fieldnames):
            raise SystemExit(f"{path}: expected a CSV with header user_id,item_id")
        for row in reader:
            held.setdefault(row["user_id"], []).append(row["item_id"])
    return held


def parse_k_range(text: str) -> list[int]:
    """"A..B" -> [A, ..., B] (1 <= A <= B)."""
    try:
        low, high = (int(part) for part in text.split(".."))
    except ValueError as exc:
        raise ValueError(f"--k-range expects A..B, e.g. 3..12, got {text!r}") from exc
    if not 1 <= low <= high:
        raise ValueError(f"--k-range needs 1 <= A <= B, got {text!r}")
    return list(range(low, high + 1))


# --------------------------------------------------------------------------------------------
# The streaming pass.
# --------------------------------------------------------------------------------------------


class TextVectors:
    """The encoder with a per-process cache by text: each distinct text is encoded once."""

    def __init__(self, encoder: Any, batch_size: int = 0, progress: bool = False) -> None:
        self.encoder = encoder
        self.batch_size = batch_size or encoder.batch_size  # 0: the encoder's own (CPU or GPU)
        self.progress = progress
        self.cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0
        self.encoded = 0

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def warm(self, texts: Iterable[str], label: str = "texts") -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if not missing:
            return
        start = time.perf_counter()
        chunk = max(self.batch_size * 8, 1)
        for begin in range(0, len(missing), chunk):
            part = missing[begin : begin + chunk]
            rows = self.encoder.encode(part, batch_size=self.batch_size)
            for text, row in zip(part, rows):
                self.cache[text] = np.array(row, dtype=np.float32)
            if self.progress:
                done = begin + len(part)
                rate = done / max(time.perf_counter() - start, 1e-9)
                sys.stderr.write(f"\rencoding {label}: {done:,}/{len(missing):,} ({rate:,.1f}/s)   ")
                sys.stderr.flush()
        if self.progress:
            sys.stderr.write("\n")
        self.seconds += time.perf_counter() - start
        self.encoded += len(missing)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.warm(texts)
        return np.stack([self.cache[t] for t in texts])


def encode_items(file: EventFile, vectors: TextVectors) -> tuple[dict[str, Any], dict[str, np.ndarray], int]:
    """The catalogue as the worker's items agent builds it.

    Returns {item_id: what Pipeline.apply's catalogue callable returns}, {item_id: vector} and
    the number of invalid items.
    """
    good: dict[str, tuple[str, tuple[str, ...]]] = {}
    invalid = 0
    for line, raw in file.items:
        try:
            item, text = catalogue_text(Message("items", 0, line, None, raw))  # the worker's recipe
        except InvalidEvent:
            invalid += 1
            continue
        good[item.item_id] = (text, item.categories)  # a later version replaces the earlier, as in the table
    vectors.warm((text for text, _ in good.values()), "items")
    plain = {item_id: vectors.cache[text] for item_id, (text, _) in good.items()}
    catalogue = {item_id: CatalogueItem(plain[item_id], categories) for item_id, (_, categories) in good.items()}
    return catalogue, plain, invalid


def _messages(settings: Settings, lines: Sequence[StreamLine], first_offset: int) -> list[Message]:
    topic = {"review": settings.topic_reviews, "behavior": settings.topic_behaviors}
    return [
        Message(topic[line.kind], 0, first_offset + n, line.key, line.value) for n, line in enumerate(lines)
    ]


def review_texts(settings: Settings, lines: Sequence[StreamLine], dim: int) -> list[str]:
    """The cleaned review texts exactly as Pipeline.prepare produces them (to encode up front)."""
    reviews = [line for line in lines if line.kind == "review"]
    if not reviews:
        return []
    return Pipeline(settings, new_segmentation(settings, dim)).prepare(_messages(settings, reviews, 0)).texts


@dataclass
class StreamRun:
    states: dict[str, UserState]
    centroids: np.ndarray | None
    profiles: SegmentProfiles
    seconds: float
    events: int
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    changes: int = 0
    batches: int = 0

    @property
    def held(self) -> int:
        return sum(len(s.pending) for s in self.states.values())


def stream_once(
    settings: Settings,
    lines: Sequence[StreamLine],
    catalogue: Mapping[str, Any],
    text_vectors: TextVectors,
) -> StreamRun:
    """One pass of ``lines`` through the worker's code path, in micro-batches of batch_size.

    Offsets are the running position in this pass (one partition per topic), so they increase
    as a Kafka partition's do whatever order ``lines`` are in.
    """
    local = LocalRun(settings, text_vectors.dim, catalogue.get)
    run = StreamRun({}, None, local.owner.profiles, 0.0, len(lines))
    start = time.perf_counter()
    for begin in range(0, len(lines), settings.batch_size):
        messages = _messages(settings, lines[begin : begin + settings.batch_size], begin)
        texts = local.pipeline.prepare(messages).texts
        result = local.batch(messages, text_vectors(texts))
        run.applied += result.applied
        run.duplicates += result.duplicates
        run.dead_letters += len(result.dead_letters)
        run.changes += len(result.changes)
        run.batches += 1
    run.seconds = time.perf_counter() - start
    run.states = {user_id: UserState.from_bytes(raw) for user_id, raw in local.table.items()}
    run.profiles = local.owner.profiles
    centroids = local.owner.model.centroids
    run.centroids = None if centroids is None else np.array(centroids, dtype=np.float64)
    return run


def final_users(states: Mapping[str, UserState]) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Users with a vector and a segment (sorted by id), their vectors X, segments L, and the
    number of users with a vector but no segment yet."""
    users, rows, segments, unassigned = [], [], [], 0
    for user_id in sorted(states, key=id_key):
        state = states[user_id]
        vector = state.vector
        if vector is None:
            continue
        if state.segment is None:
            unassigned += 1
            continue
        users.append(user_id)
        rows.append(vector)
        segments.append(state.segment)
    dim = rows[0].shape[0] if rows else 0
    x = np.stack(rows).astype(np.float64) if rows else np.zeros((0, dim))
    return users, x, np.asarray(segments, dtype=np.int64), unassigned


# --------------------------------------------------------------------------------------------
# The evaluation.
# --------------------------------------------------------------------------------------------


def seed_users_for(configured: int, n_users: int) -> tuple[int, str]:
    """The configured seed_users, or the number of users when fewer (so small files still seed)."""
    if n_users < configured:
        return n_users, f"{n_users} (configured {configured}, lowered to the {n_users} users of the file so the model seeds)"
    return configured, f"{configured} (configured)"


def aggregate(values: Sequence[float | int | None]) -> dict[str, Any]:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": None, "spread": None, "values": list(values)}
    return {"mean": float(np.mean(finite)), "spread": max(finite) - min(finite), "values": list(values)}


def _digest(users: Sequence[str], x: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update("\0".join(users).encode())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def evaluate(
    file: EventFile,
    encoder: Any,
    ks: Sequence[int],
    orders: int = 1,
    seed: int = 0,
    labels: Mapping[str, str] | None = None,
    heldout: Mapping[str, Sequence[str]] | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Stream ``file`` ``orders`` times for each k and score the final segments; one dict out.

    ``orders`` == 1 streams the review/behaviour lines in file order; more streams them shuffled
    with seeds ``seed``, ``seed + 1``, ... (items always first). ``overrides`` are settings
    overrides (e.g. batch_size) on top of the environment.
    """
    overrides = dict(overrides or {})
    started = time.perf_counter()
    base = load_settings(**overrides)
    text_vectors = TextVectors(encoder, base.encode_batch_size, progress=progress)
    catalogue_items, item_vectors, invalid_items = encode_items(file, text_vectors)
    text_vectors.warm(review_texts(base, file.stream, text_vectors.dim), "reviews")

    n_users = len(file.users)
    seed_users, seed_note = seed_users_for(base.seed_users, n_users)
    order_seeds: list[int | None] = [None] if orders == 1 else [seed + i for i in range(orders)]
    streams: list[list[StreamLine]] = []
    for order_seed in order_seeds:
        lines = list(file.stream)
        if order_seed is not None:
            random.Random(order_seed).shuffle(lines)
        streams.append(lines)

    train: dict[str, list[str]] = {}
    for line in file.stream:
        if line.user_id is not None and line.item_id is not None:
            train.setdefault(line.user_id, []).append(line.item_id)
    n_catalogue = len(item_vectors)

    results = []
    for k in ks:
        if seed_users < k:
            raise SystemExit(f"k={k} needs at least {k} users; the file has {n_users}")
        settings = load_settings(**{**overrides, "k": k, "seed_users": seed_users})
        per_order: list[dict[str, Any]] = []
        batch_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        anchor: dict[str, Any] | None = None
        for order_seed, lines in zip(order_seeds, streams):
            run = stream_once(settings, lines, catalogue_items, text_vectors)
            users, x, segments, unassigned = final_users(run.states)
            row: dict[str, Any] = {
                "order_seed": order_seed,
                "stream_wall_s": run.seconds,
                "events_per_s": run.events / run.seconds if run.seconds > 0 else None,
                "applied": run.applied,
                "duplicates": run.duplicates,
                "dead_letters": run.dead_letters,
                "held_unknown_items": run.held,
                "segment_changes": run.changes,
                "users_unassigned": unassigned,
            }
            if run.centroids is None or len(users) <= k:
                row["error"] = "the model never seeded" if run.centroids is None else "too few users"
                per_order.append(row)
                continue
            key = _digest(users, x)
            if key not in batch_cache:
                batch_cache[key] = batch_kmeans(x, k, seed)
            truth = None if labels is None else [labels.get(u) for u in users]
            row |= clustering_metrics(x, segments, run.centroids, k, seed, truth, batch_cache[key])
            if heldout is not None:
                if anchor is None:
                    anchor = _anchor_recommendations(train, heldout, item_vectors, k, seed, n_catalogue)
                groups = dict(zip(users, segments.tolist()))
                recs, fallback = popularity_recommendations(train, heldout, groups)
                served = served_recommendations(run.profiles, groups, train, heldout)
                row |= {
                    f"recall@{TOP_N}_segments": recall_at_n(recs, heldout),
                    f"coverage@{TOP_N}_segments": coverage_at_n(recs, n_catalogue),
                    f"recall@{TOP_N}_served": recall_at_n(served, heldout),
                    f"coverage@{TOP_N}_served": coverage_at_n(served, n_catalogue),
                    "users_without_segment_given_global": fallback,
                } | anchor
            per_order.append(row)
            if progress:
                sys.stderr.write(
                    f"k={k} order {order_seed if order_seed is not None else 'file'}: "
                    f"{run.events:,} events in {run.seconds:.1f} s\n"
                )
        names = list(dict.fromkeys(name for row in per_order for name in row if name not in ("order_seed", "error")))
        metrics = {name: aggregate([row.get(name) for row in per_order]) for name in names}
        errors = [row["error"] for row in per_order if "error" in row]
        results.append({"k": k, "metrics": metrics, "errors": errors})

    report: dict[str, Any] = {
        "file": file.path,
        "hardware": hardware(encoder),
        "events": file.counts() | {"invalid_items": invalid_items, "catalogue": n_catalogue},
        "labels": None if labels is None else {"users": len(labels), "distinct": len(set(labels.values()))},
        "heldout_users": None if heldout is None else len(heldout),
        "settings": {
            "seed_users": seed_users,
            "seed_users_note": seed_note,
            "batch_size": base.batch_size,
            "half_life_days": base.half_life_days,
            "dedup_horizon_days": base.dedup_horizon_days,
        },
        "orders": orders,
        "order": "file order" if orders == 1 else f"review/behaviour lines shuffled with seeds {seed}..{seed + orders - 1}; items first",
        "seed": seed,
        "encoding": {
            "texts": text_vectors.encoded,
            "seconds": text_vectors.seconds,
            "per_s": text_vectors.encoded / text_vectors.seconds if text_vectors.seconds > 0 else None,
            "note": "each distinct text encoded once, before streaming; the streaming passes read the cache",
        },
        "results": results,
    }
    if len(ks) > 1:
        scored = [(r["metrics"].get("silhouette", {}).get("mean"), r["k"]) for r in results]
        scored = [(s, k) for s, k in scored if s is not None]
        report["suggested_k"] = max(scored)[1] if scored else None
        report["suggested_k_rule"] = SUGGEST_RULE
    report["wall_s"] = time.perf_counter() - started
    return report


def _anchor_recommendations(
    train: Mapping[str, Sequence[str]],
    heldout: Mapping[str, Sequence[str]],
    item_vectors: Mapping[str, np.ndarray],
    k: int,
    seed: int,
    catalogue: int,
) -> dict[str, float]:
    """Global popularity, and batch KMeans on users' plain mean item embeddings + the same
    segment-popularity recommender: references computed in the same run."""
    global_recs, _ = popularity_recommendations(train, heldout)
    users, means = mean_embeddings(train, item_vectors)
    labels, _ = batch_kmeans(means, k, seed)
    mean_recs, _ = popularity_recommendations(train, heldout, dict(zip(users, labels.tolist())))
    return {
        f"recall@{TOP_N}_global": recall_at_n(global_recs, heldout),
        f"coverage@{TOP_N}_global": coverage_at_n(global_recs, catalogue),
        f"recall@{TOP_N}_batch_mean": recall_at_n(mean_recs, heldout),
        f"coverage@{TOP_N}_batch_mean": coverage_at_n(mean_recs, catalogue),
    }


def hardware(encoder: Any = None) -> dict[str, Any]:
    from stream.bench import cpu_model

    out: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    if encoder is not None:
        out["encoder_providers"] = list(getattr(encoder, "providers", []))
    return out


# --------------------------------------------------------------------------------------------
# The readable table.
# --------------------------------------------------------------------------------------------

ROWS: list[tuple[str, str, str]] = [
    # (metric, label, format)
    ("users", "users (with a vector and a segment)", "d"),
    ("segments_used", "segments used", "d"),
    ("inertia_ratio", "inertia ratio stream/batch", ".4f"),
    ("inertia_stream", "inertia, streaming centroids", ".2f"),
    ("inertia_batch", "inertia, batch KMeans (n_init=10)", ".2f"),
    ("silhouette", "silhouette (cosine)", ".4f"),
    ("calinski_harabasz", "Calinski-Harabasz", ".2f"),
    ("davies_bouldin", "Davies-Bouldin", ".4f"),
    ("nmi_vs_batch", "NMI segments vs batch", ".4f"),
    ("ari_vs_batch", "ARI segments vs batch", ".4f"),
    ("nmi_vs_labels", "NMI segments vs labels", ".4f"),
    ("ari_vs_labels", "ARI segments vs labels", ".4f"),
    ("batch_nmi_vs_labels", "NMI batch vs labels (reference)", ".4f"),
    ("batch_ari_vs_labels", "ARI batch vs labels (reference)", ".4f"),
    (f"recall@{TOP_N}_segments", f"recall@{TOP_N} segment popularity", ".4f"),
    (f"coverage@{TOP_N}_segments", f"coverage@{TOP_N} segment popularity", ".4f"),
    (f"recall@{TOP_N}_served", f"recall@{TOP_N} as served (decayed profiles)", ".4f"),
    (f"coverage@{TOP_N}_served", f"coverage@{TOP_N} as served (decayed profiles)", ".4f"),
    (f"recall@{TOP_N}_global", f"recall@{TOP_N} global popularity", ".4f"),
    (f"coverage@{TOP_N}_global", f"coverage@{TOP_N} global popularity", ".4f"),
    (f"recall@{TOP_N}_batch_mean", f"recall@{TOP_N} batch KMeans on mean emb.", ".4f"),
    (f"coverage@{TOP_N}_batch_mean", f"coverage@{TOP_N} batch KMeans on mean emb.", ".4f"),
    ("stream_wall_s", "streaming wall time, s", ".2f"),
    ("events_per_s", "streaming events/s", ",.0f"),
    ("applied", "events applied", ",.0f"),
    ("dead_letters", "dead letters", ",.0f"),
    ("duplicates", "duplicates skipped", ",.0f"),
    ("held_unknown_items", "behaviours held (unknown items)", ",.0f"),
    ("users_unassigned", "users with a vector, no segment", ",.0f"),
    ("users_without_segment_given_global", "users given global list (no segment)", ",.0f"),
]


def _cell(agg: dict[str, Any] | None, fmt: str, orders: int) -> str:
    if not agg or agg["mean"] is None:
        return "-"
    if fmt == "d":
        text = f"{agg['mean']:.1f}" if agg["spread"] else f"{int(round(agg['mean']))}"
        return text
    text = format(agg["mean"], fmt)
    if orders > 1:
        text += f" ±{format(agg['spread'], fmt)}"
    return text


def format_report(report: dict[str, Any]) -> str:
    hw = report["hardware"]
    ev = report["events"]
    lines = [
        f"segstream evaluate {report['file']}",
        f"hardware: {hw['cpu']}, {hw['cores']} cores; python {hw['python']}; "
        f"encoder providers: {', '.join(hw.get('encoder_providers', [])) or '-'}",
        f"events: {ev['items']:,} items ({ev['catalogue']:,} valid), {ev['reviews']:,} reviews, "
        f"{ev['behaviors']:,} behaviours, {ev['users']:,} users"
        + (f"; {ev['not_json']} lines not JSON" if ev["not_json"] else "")
        + (f"; {ev['unrecognised']} lines of no known type" if ev["unrecognised"] else ""),
    ]
    if report["labels"]:
        lines.append(f"labels: {report['labels']['users']:,} users, {report['labels']['distinct']} labels")
    if report["heldout_users"] is not None:
        lines.append(f"held-out items for {report['heldout_users']:,} users; recommendations: top {TOP_N}")
    s = report["settings"]
    lines.append(f"seed_users: {s['seed_users_note']}; batch_size {s['batch_size']}")
    lines.append(f"orders: {report['orders']} ({report['order']})")
    enc = report["encoding"]
    if enc["texts"]:
        lines.append(
            f"encoding: {enc['texts']:,} distinct texts in {enc['seconds']:.1f} s "
            f"({enc['per_s']:,.1f}/s), once; every streaming pass reads the cache"
        )
    results = report["results"]
    orders = report["orders"]
    present = [
        (name, label, fmt)
        for name, label, fmt in ROWS
        if any(name in r["metrics"] for r in results)
    ]
    header = ["metric"] + [f"k={r['k']}" for r in results]
    table = [header] + [
        [label] + [_cell(r["metrics"].get(name), fmt, orders) for r in results] for name, label, fmt in present
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines.append("")
    for n, row in enumerate(table):
        lines.append("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if orders > 1:
        lines.append(f"cells: mean over the {orders} orders ± spread (max - min), not a standard deviation")
    lines.append(
        "inertia ratio: sum of squared distances of the final user vectors to their nearest streaming "
        "centroid over the same for KMeans(k, n_init=10) fitted on them; silhouette on at most "
        f"{SILHOUETTE_SAMPLE} users"
    )
    for r in results:
        for error in sorted(set(r["errors"])):
            lines.append(f"k={r['k']}: {error}")
    if "suggested_k" in report:
        lines.append(f"suggested k: {report['suggested_k']} ({report['suggested_k_rule']})")
    lines.append(f"total wall time: {report['wall_s']:.1f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Built-in data sets and the command.
# --------------------------------------------------------------------------------------------


def eval_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "segstream" / "eval"


def _write_atomic(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        for line in lines:
            handle.write(line)
    os.replace(tmp, path)


def _csv_lines(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return [buffer.getvalue()]


def build_bbc(dest: Path | None = None) -> tuple[Path, Path]:
    """bbc.jsonl (each article one user's review) and bbc-labels.csv (user -> folder label)."""
    from stream import bbc

    dest = dest or eval_dir()
    articles = bbc.articles()
    events = [bbc.review_event(a, n) for n, a in enumerate(articles)]
    events_path, labels_path = dest / "bbc.jsonl", dest / "bbc-labels.csv"
    _write_atomic(events_path, (json.dumps(e) + "\n" for e in events))
    _write_atomic(labels_path, _csv_lines(["user_id", "label"], ((e["user_id"], a.label) for e, a in zip(events, articles))))
    return events_path, labels_path


def build_movielens(dest: Path | None = None, fraction: float = 0.8) -> tuple[Path, Path]:
    """movielens.jsonl (all movies as items, then each user's first 80% of ratings by time as
    behaviours, in global time order) and movielens-heldout.csv (the rest)."""
    from stream import movielens

    dest = dest or eval_dir()
    ratings = movielens.ratings()  # sorted by time, ties by user and item
    train_idx, held = time_split([(r.user_id, r.item_id, r.ts_ms) for r in ratings], fraction)
    events_path, held_path = dest / "movielens.jsonl", dest / "movielens-heldout.csv"
    items = (json.dumps(movielens.item_event(m)) + "\n" for m in movielens.movies())
    behaviours = (json.dumps(movielens.behavior_event(ratings[i])) + "\n" for i in train_idx)
    _write_atomic(events_path, (line for part in (items, behaviours) for line in part))
    rows = ((u, i) for u in sorted(held, key=id_key) for i in held[u])
    _write_atomic(held_path, _csv_lines(["user_id", "item_id"], rows))
    return events_path, held_path


def load_default_encoder() -> Any:
    from models.encoder import encoder_for

    return encoder_for(load_settings())


DATASETS = {"bbc": {"k": 5, "orders": 5}, "movielens": {"k": 16, "orders": 1}}


def command(
    target: str,
    labels: str | None = None,
    heldout: str | None = None,
    k: int | None = None,
    k_range: str | None = None,
    orders: int | None = None,
    seed: int = 0,
    as_json: bool = False,
) -> int:
    """``segstream evaluate``: a JSONL file, or the built-in ``bbc`` / ``movielens`` sets."""
    started = time.perf_counter()
    defaults: dict[str, int] = {}
    if target in DATASETS and not Path(target).exists():
        defaults = DATASETS[target]
        if target == "bbc":
            events_path, built = build_bbc()
            labels = labels or str(built)
        else:
            events_path, built = build_movielens()
            heldout = heldout or str(built)
        print(f"built {events_path} and {built}", file=sys.stderr)
    else:
        events_path = Path(target)
        if not events_path.is_file():
            raise SystemExit(f"{target}: no such file (or use the data sets bbc, movielens)")
    ks = parse_k_range(k_range) if k_range else [k or defaults.get("k") or load_settings().k]
    n_orders = orders or defaults.get("orders", 1)
    if n_orders < 1:
        raise SystemExit("--orders must be >= 1")
    file = read_events(events_path)
    if not file.stream:
        raise SystemExit(f"{events_path}: no review or behaviour events")
    report = evaluate(
        file,
        load_default_encoder(),
        ks,
        orders=n_orders,
        seed=seed,
        labels=read_labels(labels) if labels else None,
        heldout=read_heldout(heldout) if heldout else None,
        progress=not as_json,
    )
    report["command_wall_s"] = time.perf_counter() - started
    if as_json:
        print(json.dumps(_jsonable(report)))
    else:
        print(format_report(report))
        print(f"command wall time (with data set build and encoder load): {report['command_wall_s']:.1f} s")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value
