"""``segstream bench``: encoder throughput against sentence-transformers, and (optionally) the
worker end to end on the embedded broker. Not part of the test suite.

Section 1, "Encoder": sentences per second on real texts (BBC News snippets of review length,
and their first sentences) for sentence-transformers on torch (the baseline, batch 32, torch
threads = the physical cores available), the ONNX encoder in fp32 and int8, each also with
batches in input order (padded to the batch's longest) instead of sorted by length. Every
engine is timed once per round, round after round, so load from other processes falls on all
of them alike; each figure is the median of the rounds after a warm-up. The ratio is to the
baseline measured in the same run; cosines are to the baseline's embeddings.

Section 2, "End to end" (``--end-to-end``, minutes): events per second through one worker on
the embedded broker: BBC reviews (each needs the encoder) and MovieLens behaviours (no
encoding: the item's vector), against the same encoder alone in this process.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BATCH_SIZE = 32
SNIPPET_CHARS = 400


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
    except OSError:
        pass
    return []


def hardware() -> dict[str, Any]:
    import onnxruntime as ort

    from models.encoder import physical_cores

    return {
        "cpu": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": cpu_flags(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
    }


def hardware_line(hw: dict[str, Any]) -> str:
    return (
        f"hardware: {hw['cpu']}, {hw['physical_cores']} physical cores ({hw['logical_cpus']} CPUs), "
        f"{' '.join(hw['flags']) or 'no avx2'}; Python {hw['python']}; onnxruntime {hw['onnxruntime']} "
        f"({', '.join(hw['providers'])})"
    )


def text_sets(n: int) -> dict[str, list[str]]:
    """``n`` BBC articles spread evenly over the corpus: their first 400 characters (review
    length, ~64 words) and their first sentence (tweet length)."""
    from stream.bbc import articles

    pool = articles()
    step = max(1, len(pool) // n)
    chosen = [a.text for a in pool[::step][:n]]
    snippets = [t[:SNIPPET_CHARS] for t in chosen]
    sentences = []
    for text in chosen:
        cut = text.find(". ")
        sentences.append(text[: cut + 1] if 0 < cut < SNIPPET_CHARS else text[:140])
    return {f"BBC snippets ({SNIPPET_CHARS} chars)": snippets, "first sentences": sentences}


def _timed_rounds(engines: dict[str, Callable[[], np.ndarray]], repeats: int) -> dict[str, float]:
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(repeats):
        for name, run in engines.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def encoder_section(n_texts: int, repeats: int, threads: int | None) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    from models.encoder import Encoder, default_model_path, export_onnx, physical_cores
    from stream.config import load_settings

    settings = load_settings()
    cores = threads or physical_cores()
    torch.set_num_threads(cores)
    onnx_dir = export_onnx(Path(settings.model_path) if settings.model_path else None, Path(settings.model_cache))
    baseline = SentenceTransformer(str(Path(settings.model_path) if settings.model_path else default_model_path()), device="cpu")
    fp32 = Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=cores)
    int8 = Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=cores, precision="int8")

    sets = []
    for label, texts in text_sets(n_texts).items():
        engines: dict[str, Callable[[], np.ndarray]] = {
            "sentence-transformers (torch)": lambda texts=texts: baseline.encode(
                texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True
            ),
            "onnx fp32": lambda texts=texts: fp32.encode(texts, BATCH_SIZE),
            "onnx int8": lambda texts=texts: int8.encode(texts, BATCH_SIZE),
            "onnx fp32, input order": lambda texts=texts: fp32.encode(texts, BATCH_SIZE, sort_by_length=False),
            "onnx int8, input order": lambda texts=texts: int8.encode(texts, BATCH_SIZE, sort_by_length=False),
        }
        outputs = {name: run() for name, run in engines.items()}  # warm-up, and the embeddings
        medians = _timed_rounds(engines, repeats)
        reference = outputs["sentence-transformers (torch)"]
        base_rate = len(texts) / medians["sentence-transformers (torch)"]
        rows = []
        for name in engines:
            cos = (outputs[name] * reference).sum(axis=1) / (
                np.linalg.norm(outputs[name], axis=1) * np.linalg.norm(reference, axis=1)
            )
            rate = len(texts) / medians[name]
            rows.append({
                "engine": name,
                "sentences_per_s": rate,
                "ratio": rate / base_rate,
                "cos_mean": float(cos.mean()),
                "cos_min": float(cos.min()),
            })
        words = statistics.mean(len(t.split()) for t in texts)
        sets.append({"texts": label, "n": len(texts), "mean_words": words, "rows": rows})
    return {
        "threads": cores,
        "batch_size": BATCH_SIZE,
        "repeats": repeats,
        "sets": sets,
        "note": "the ONNX encoder sorts texts by length before batching (each batch padded to its "
        "longest); 'input order' rows turn that off. sentence-transformers sorts by length too.",
    }


def print_encoder_section(result: dict[str, Any]) -> None:
    print(
        f"\n1. Encoder: sentences/s, median of {result['repeats']} rounds after a warm-up; batch "
        f"{result['batch_size']}, {result['threads']} threads (torch and onnxruntime intra-op)"
    )
    for s in result["sets"]:
        print(f"\n  {s['texts']}: {s['n']} texts, {s['mean_words']:.0f} words on average")
        print(f"  {'engine':<32}{'sentences/s':>12}{'ratio':>8}{'cos mean':>10}{'cos min':>9}")
        for row in s["rows"]:
            print(
                f"  {row['engine']:<32}{row['sentences_per_s']:>12,.1f}{row['ratio']:>7.2f}x"
                f"{row['cos_mean']:>10.4f}{row['cos_min']:>9.4f}"
            )
    print(f"\n  {result['note']}")


# --- section 2: the worker end to end ----------------------------------------------------


def _through_worker(worker: Any, settings: Any, topic: str, events: list, label: str) -> float:
    from stream.kafka import publish

    before = worker.health()["counters"]["applied"]
    start = time.monotonic()
    publish(settings, topic, events, label)
    worker.wait_until(
        lambda h: bool(h) and h["counters"]["applied"] - before >= len(events), 1800, f"{label} to be applied"
    )
    return len(events) / (time.monotonic() - start)


def end_to_end_section(n_reviews: int, n_ratings: int, repeats: int) -> dict[str, Any]:
    """Reviews/s and behaviours/s through one worker on the embedded broker, against the
    same encoder (settings' precision and threads) alone in this process on the same texts."""
    from models.encoder import encoder_for
    from models.text import clean_text
    from stream import bbc, movielens
    from stream.config import load_settings
    from stream.kafka import EmbeddedBroker, ensure_topics, free_port, publish
    from stream.launcher import WorkerProcess

    articles = bbc.articles()[:n_reviews]
    reviews = [(d["user_id"], d) for d in (bbc.review_event(a, n) for n, a in enumerate(articles))]
    settings0 = load_settings()
    encoder = encoder_for(settings0)
    texts = [clean_text(a.text) for a in articles]
    encoder.encode(texts[:32])
    timings = []
    for _ in range(repeats):
        started = time.monotonic()
        encoder.encode(texts, batch_size=settings0.encode_batch_size)
        timings.append(time.monotonic() - started)
    encoder_rate = len(texts) / statistics.median(timings)
    providers = list(encoder.providers)
    del encoder

    with tempfile.TemporaryDirectory() as logs, EmbeddedBroker(log_path=Path(logs) / "broker.log").running() as broker:
        settings = load_settings(
            bootstrap=broker.bootstrap, app_id="bench", store="memory://", web_port=free_port(),
            session_timeout_s=4.0, k=8,
        )
        ensure_topics(settings)
        worker = WorkerProcess(settings, Path(logs) / "worker.log").start()
        try:
            review_rate = _through_worker(worker, settings, settings.topic_reviews, reviews, "reviews")
            movies = [(m.item_id, movielens.item_event(m)) for m in movielens.movies()]
            publish(settings, settings.topic_items, movies, "catalogue")
            worker.wait_until(lambda h: bool(h) and h["catalogue_items"] >= len(movies), 600, "the catalogue")
            ratings = [(r.user_id, movielens.behavior_event(r)) for r in movielens.ratings()[:n_ratings]]
            behavior_rate = _through_worker(worker, settings, settings.topic_behaviors, ratings, "behaviours")
        finally:
            worker.stop()
    return {
        "precision": settings0.encoder_precision,
        "providers": providers,
        "repeats": repeats,
        "reviews": len(reviews),
        "behaviours": len(ratings),
        "encoder_reviews_per_s": encoder_rate,
        "worker_reviews_per_s": review_rate,
        "worker_behaviours_per_s": behavior_rate,
    }


def print_end_to_end_section(result: dict[str, Any]) -> None:
    print(
        f"\n2. End to end: one worker on the embedded broker; encoder {result['precision']} on "
        f"{', '.join(result['providers'])}"
    )
    print(f"  {'what':<46}{'per second':>12}{'ratio':>8}")
    rate = result["encoder_reviews_per_s"]
    label = f"encoder alone, BBC reviews (median of {result['repeats']})"
    print(f"  {label:<46}{rate:>12,.0f}{1.0:>8.2f}")
    worker_rate = result["worker_reviews_per_s"]
    label = f"worker, {result['reviews']} BBC reviews"
    print(f"  {label:<46}{worker_rate:>12,.0f}{worker_rate / rate:>8.2f}")
    label = f"worker, {result['behaviours']} MovieLens behaviours"
    print(f"  {label:<46}{result['worker_behaviours_per_s']:>12,.0f}")


def command(
    n_texts: int = 256,
    repeats: int = 3,
    threads: int | None = None,
    end_to_end: bool = False,
    reviews: int = 2225,
    ratings: int = 100_000,
    as_json: bool = False,
) -> int:
    if n_texts < 1 or repeats < 1:
        raise SystemExit("--texts and --repeats must be at least 1")
    hw = hardware()
    report: dict[str, Any] = {"hardware": hw, "encoder": encoder_section(n_texts, repeats, threads)}
    if end_to_end:
        report["end_to_end"] = end_to_end_section(reviews, ratings, repeats)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(hardware_line(hw))
    print_encoder_section(report["encoder"])
    if end_to_end:
        print_end_to_end_section(report["end_to_end"])
    return 0
