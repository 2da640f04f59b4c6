"""``segstream evaluate``: a JSONL file of contract events (or a built-in set) through the worker's
code path, offline, scored against batch k-means, labels and held-out items."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import load_settings
from stream.factories import encoder_for
from stream.tools.evaluate.datasets import build_bbc, build_chinese_reviews, build_movielens
from stream.tools.evaluate.events_file import parse_k_range, read_events, read_heldout, read_labels
from stream.tools.evaluate.report import evaluate
from stream.tools.evaluate.table import format_report


DATASETS = {"bbc": {"k": 5, "orders": 5}, "chinese-reviews": {"k": 3, "orders": 5}, "movielens": {"k": 16, "orders": 1}}


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
    """``segstream evaluate``: a JSONL file, or the built-in ``bbc``, ``chinese-reviews`` or
    ``movielens`` sets."""
    started = time.perf_counter()
    defaults: dict[str, int] = {}
    if target in DATASETS and not Path(target).exists():
        defaults = DATASETS[target]
        if target in ("bbc", "chinese-reviews"):
            events_path, built = build_bbc() if target == "bbc" else build_chinese_reviews()
            labels = labels or str(built)
        else:
            events_path, built = build_movielens()
            heldout = heldout or str(built)
        print(f"built {events_path} and {built}", file=sys.stderr)
    else:
        events_path = Path(target)
        if not events_path.is_file():
            raise SystemExit(f"{target}: no such file (or use the data sets {', '.join(DATASETS)})")
    ks = parse_k_range(k_range) if k_range else [k or defaults.get("k") or load_settings().k]
    n_orders = orders or defaults.get("orders", 1)
    if n_orders < 1:
        raise SystemExit("--orders must be >= 1")
    file = read_events(events_path)
    if not file.stream:
        raise SystemExit(f"{events_path}: no review or behaviour events")
    report = evaluate(
        file,
        encoder_for(load_settings()),
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
