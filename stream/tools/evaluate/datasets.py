"""The built-in evaluation sets as files: BBC News with labels, MovieLens with held-out items."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from stream.datasets import bbc, chinese_reviews, movielens
from stream.tools.evaluate.recommend import id_key, time_split


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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return [buffer.getvalue()]


def build_bbc(dest: Path | None = None) -> tuple[Path, Path]:
    """bbc.jsonl (each article one user's review) and bbc-labels.csv (user -> folder label)."""
    dest = dest or eval_dir()
    articles = bbc.articles()
    events = [bbc.review_event(a, n) for n, a in enumerate(articles)]
    events_path, labels_path = dest / "bbc.jsonl", dest / "bbc-labels.csv"
    _write_atomic(events_path, (json.dumps(e) + "\n" for e in events))
    _write_atomic(labels_path, _csv_lines(["user_id", "label"], ((e["user_id"], a.label) for e, a in zip(events, articles))))
    return events_path, labels_path


def build_chinese_reviews(dest: Path | None = None, per_domain: int = 100) -> tuple[Path, Path]:
    """chinese-reviews.jsonl (``per_domain`` users of hotels, books and electronics, two reviews
    each, the domain words cut: stream/datasets/chinese_reviews.py) and chinese-reviews-labels.csv
    (user -> domain)."""
    dest = dest or eval_dir()
    users = chinese_reviews.two_review_users(per_domain)
    events = [e for n, (user, reviews) in enumerate(users) for e in chinese_reviews.review_events(user, reviews, n)]
    events_path, labels_path = dest / "chinese-reviews.jsonl", dest / "chinese-reviews-labels.csv"
    _write_atomic(events_path, (json.dumps(e, ensure_ascii=False) + "\n" for e in events))
    _write_atomic(labels_path, _csv_lines(["user_id", "label"], ((u, reviews[0].domain) for u, reviews in users)))
    return events_path, labels_path


def build_movielens(dest: Path | None = None, fraction: float = 0.8) -> tuple[Path, Path]:
    """movielens.jsonl (all movies as items, then each user's first 80% of ratings by time as
    behaviours, in global time order) and movielens-heldout.csv (the rest)."""
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
