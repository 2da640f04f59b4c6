"""The evaluation report as a readable table."""

from __future__ import annotations

from typing import Any

from stream.tools.evaluate.metrics import DUNN_SAMPLE, SILHOUETTE_SAMPLE
from stream.tools.evaluate.recommend import TOP_N

RANKING_METRICS = {"recall": "recall", "precision": "precision", "ndcg": "NDCG", "coverage": "coverage"}


def _recommender_rows(name: str, label: str) -> list[tuple[str, str, str]]:
    """One recommender's ranking figures together, so recommenders read as blocks."""
    return [(f"{key}@{TOP_N}_{name}", f"{shown}@{TOP_N} {label}", ".4f") for key, shown in RANKING_METRICS.items()]


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
    ("dunn", "Dunn (Euclidean, sampled)", ".4f"),
    ("nmi_vs_batch", "NMI segments vs batch", ".4f"),
    ("ari_vs_batch", "ARI segments vs batch", ".4f"),
    ("nmi_vs_labels", "NMI segments vs labels", ".4f"),
    ("ari_vs_labels", "ARI segments vs labels", ".4f"),
    ("batch_nmi_vs_labels", "NMI batch vs labels (reference)", ".4f"),
    ("batch_ari_vs_labels", "ARI batch vs labels (reference)", ".4f"),
    *_recommender_rows("segments", "segment popularity"),
    *_recommender_rows("served", "as served (decayed profiles)"),
    (f"already_consumed@{TOP_N}_served", f"share of served top-{TOP_N} already consumed", ".4f"),
    (f"users_short@{TOP_N}_served", f"held-out users served fewer than {TOP_N}", "d"),
    *_recommender_rows("global", "global popularity"),
    *_recommender_rows("batch_mean", "batch KMeans on mean emb."),
    *_recommender_rows("item_knn", "item-kNN (collaborative anchor)"),
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
        f"{SILHOUETTE_SAMPLE} users, Dunn's index on at most {DUNN_SAMPLE}"
    )
    for r in results:
        for error in sorted(set(r["errors"])):
            lines.append(f"k={r['k']}: {error}")
    if "suggested_k" in report:
        lines.append(f"suggested k: {report['suggested_k']} ({report['suggested_k_rule']})")
    lines.append(f"total wall time: {report['wall_s']:.1f} s")
    return "\n".join(lines)
