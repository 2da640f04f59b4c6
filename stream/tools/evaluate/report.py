"""The evaluation: stream a file once per order and k, score the final segments, one report."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import random
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stream.config import load_settings
from stream.tools.hardware import cpu_model
from stream.tools.evaluate.events_file import EventFile, StreamLine
from stream.tools.evaluate.metrics import batch_kmeans, clustering_metrics
from stream.tools.evaluate.recommend import (
    TOP_N,
    consumed_share,
    coverage_at_n,
    item_knn_recommendations,
    mean_embeddings,
    ndcg_at_n,
    popularity_recommendations,
    precision_at_n,
    recall_at_n,
    served_recommendations,
    short_lists,
)
from stream.tools.evaluate.streaming import TextVectors, encode_items, final_users, review_texts, stream_once

SUGGEST_RULE = "rule: the highest mean silhouette (cosine) of the final streaming segments"


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
                served = served_recommendations(run.profiles, catalogue_items, run.states, heldout)
                row |= _segment_recommendations(served, groups, train, heldout, n_catalogue) | anchor
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


def _figures(
    name: str, recs: Mapping[str, Sequence[str]], heldout: Mapping[str, Sequence[str]], catalogue: int
) -> dict[str, float]:
    """Recall, precision, NDCG and coverage at :data:`TOP_N` of one recommender, keyed by its name."""
    return {
        f"recall@{TOP_N}_{name}": recall_at_n(recs, heldout),
        f"precision@{TOP_N}_{name}": precision_at_n(recs, heldout),
        f"ndcg@{TOP_N}_{name}": ndcg_at_n(recs, heldout),
        f"coverage@{TOP_N}_{name}": coverage_at_n(recs, catalogue),
    }


def _segment_recommendations(
    served: Mapping[str, Sequence[str]],
    groups: Mapping[str, int],
    train: Mapping[str, Sequence[str]],
    heldout: Mapping[str, Sequence[str]],
    catalogue: int,
) -> dict[str, float | int]:
    """The streaming segments' popularity, and what the service serves from their profiles; the
    served lists also say how many places go to items already consumed and how many run short."""
    recs, fallback = popularity_recommendations(train, heldout, groups)
    return (
        _figures("segments", recs, heldout, catalogue)
        | _figures("served", served, heldout, catalogue)
        | {
            f"already_consumed@{TOP_N}_served": consumed_share(served, train),
            f"users_short@{TOP_N}_served": short_lists(served, heldout),
            "users_without_segment_given_global": fallback,
        }
    )


def _anchor_recommendations(
    train: Mapping[str, Sequence[str]],
    heldout: Mapping[str, Sequence[str]],
    item_vectors: Mapping[str, np.ndarray],
    k: int,
    seed: int,
    catalogue: int,
) -> dict[str, float]:
    """Global popularity, batch KMeans on users' plain mean item embeddings + the same
    segment-popularity recommender, and item-kNN: references computed in the same run."""
    global_recs, _ = popularity_recommendations(train, heldout)
    users, means = mean_embeddings(train, item_vectors)
    labels, _ = batch_kmeans(means, k, seed)
    mean_recs, _ = popularity_recommendations(train, heldout, dict(zip(users, labels.tolist())))
    knn_recs = item_knn_recommendations(train, heldout)
    return (
        _figures("global", global_recs, heldout, catalogue)
        | _figures("batch_mean", mean_recs, heldout, catalogue)
        | _figures("item_knn", knn_recs, heldout, catalogue)
    )


def hardware(encoder: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    if encoder is not None:
        out["encoder_providers"] = list(getattr(encoder, "providers", []))
    return out
