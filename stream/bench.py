"""``segstream bench``: encoder throughput against sentence-transformers, and (optionally) the
worker end to end on the embedded broker. Not part of the test suite.

Section 1, "Encoder": sentences per second on real texts (BBC News snippets of review length,
and their first sentences) for sentence-transformers on torch (the baseline, batch 32, torch
threads = the physical cores available), the ONNX encoder in fp32 and int8, each also with
batches in input order (padded to the batch's longest) instead of sorted by length, and the
tokenizer alone. Where onnxruntime has CUDA, also the ONNX encoder in fp32 and fp16 on the GPU
(and sentence-transformers on it, where torch has CUDA) at ``--gpu-batch``. Every
engine is timed once per round, round after round, so load from other processes falls on all
of them alike; each figure is the median of the rounds after a warm-up. The ratio is to the
baseline measured in the same run; cosines are to the baseline's embeddings.

Section 2, "End to end" (``--end-to-end``, minutes): events per second through one worker on
the embedded broker: BBC reviews (each needs the encoder) and MovieLens behaviours (no
encoding: the item's vector), against the same encoder alone in this process. Once the worker
is idle again (the model owner has folded the backlog in, sweeps are done), behaviours
at half the measured behaviour rate for 20 s, in sessions like MovieLens's, with new users'
first events among them: the latency from producing an event to its change event arriving at
a consumer of the changes topic, p50 and p99.

Section 3, "User state" (``--state``, about two minutes): the worker's per-batch path without
Kafka (prepare, apply with each touched user's row read with ``UserState.from_bytes`` and
written back with ``to_bytes`` as the ``users`` table does, the model update serialised) over
a dict standing in for the table. (a) All 100k MovieLens ratings: bytes per user row, and each
user's vector read back from its row against the same events folded in float32 memory. (b)
Synthetic behaviours on a table of 1,000 and of 100,000 users: microseconds per event in the
worker, and in the model owner (one pass over the same updates). The catalogue is random unit
vectors of the encoder's dimension: row sizes and costs do not depend on what vectors mean.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.segmentation import Segmentation
    from stream.catalogue import CatalogueItem
    from stream.config import Settings
    from stream.pipeline import Message, Pipeline
    from stream.user_state import UserState

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


def encoder_section(n_texts: int, repeats: int, threads: int | None, gpu_batch: int, gpu_texts: int) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    from models.encoder import Encoder, default_model_path, export_onnx, physical_cores
    from stream.config import load_settings

    settings = load_settings()
    cores = threads or physical_cores()
    torch.set_num_threads(cores)
    model_path = Path(settings.model_path) if settings.model_path else default_model_path()
    onnx_dir = export_onnx(model_path, Path(settings.model_cache))
    baseline = SentenceTransformer(str(model_path), device="cpu")
    fp32 = Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=cores, precision="fp32")
    int8 = Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=cores, precision="int8")
    gpu: dict[str, Callable[[list[str]], np.ndarray]] = {}
    if "CUDAExecutionProvider" in ort.get_available_providers():
        for precision in ("fp32", "fp16"):
            encoder = Encoder(onnx_dir, prefer_gpu=True, precision=precision)
            gpu[f"onnx {precision}, CUDA"] = lambda texts, encoder=encoder: encoder.encode(texts, gpu_batch)
        if torch.cuda.is_available():
            on_cuda = SentenceTransformer(str(model_path), device="cuda")
            gpu["sentence-transformers, CUDA"] = lambda texts: on_cuda.encode(
                texts, batch_size=gpu_batch, normalize_embeddings=True, convert_to_numpy=True
            )

    def tokenize(texts: list[str]) -> None:
        for start in range(0, len(texts), BATCH_SIZE):
            fp32.inputs_for(texts[start : start + BATCH_SIZE])

    sets = []
    for label, texts in text_sets(n_texts).items():
        # GPU engines get the texts repeated to gpu_texts: a few hundred take them milliseconds.
        tiled = texts * max(1, -(-gpu_texts // len(texts)))
        engines: dict[str, Callable[[], np.ndarray | None]] = {
            "sentence-transformers (torch)": lambda texts=texts: baseline.encode(
                texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True
            ),
            "onnx fp32": lambda texts=texts: fp32.encode(texts, BATCH_SIZE),
            "onnx int8": lambda texts=texts: int8.encode(texts, BATCH_SIZE),
            "onnx fp32, input order": lambda texts=texts: fp32.encode(texts, BATCH_SIZE, sort_by_length=False),
            "onnx int8, input order": lambda texts=texts: int8.encode(texts, BATCH_SIZE, sort_by_length=False),
            "tokenizer alone": lambda texts=texts: tokenize(texts),
            **{name: (lambda run=run, tiled=tiled: run(tiled)) for name, run in gpu.items()},
        }
        counts = {name: len(tiled) if name in gpu else len(texts) for name in engines}
        outputs = {name: run() for name, run in engines.items()}  # warm-up, and the embeddings
        medians = _timed_rounds(engines, repeats)
        reference = outputs["sentence-transformers (torch)"]
        base_rate = len(texts) / medians["sentence-transformers (torch)"]
        rows = []
        for name in engines:
            rate = counts[name] / medians[name]
            row: dict[str, Any] = {"engine": name, "sentences_per_s": rate, "ratio": rate / base_rate}
            if outputs[name] is not None:
                ours = outputs[name][: len(texts)]
                cos = (ours * reference).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
                row.update(cos_mean=float(cos.mean()), cos_min=float(cos.min()))
            rows.append(row)
        words = statistics.mean(len(t.split()) for t in texts)
        sets.append({"texts": label, "n": len(texts), "gpu_n": len(tiled), "mean_words": words, "rows": rows})
    return {
        "threads": cores,
        "batch_size": BATCH_SIZE,
        "gpu_batch_size": gpu_batch if gpu else None,
        "repeats": repeats,
        "sets": sets,
        "note": "the ONNX encoder sorts texts by length before batching (each batch padded to its "
        "longest) and tokenizes the next batch while the model runs; 'input order' rows turn the "
        "sorting off. sentence-transformers sorts by length too. 'tokenizer alone' is the fast "
        "tokenizer plus the input arrays, batch 32, on the CPU.",
    }


def print_encoder_section(result: dict[str, Any]) -> None:
    print(
        f"\n1. Encoder: sentences/s, median of {result['repeats']} rounds after a warm-up; batch "
        f"{result['batch_size']}, {result['threads']} threads (torch and onnxruntime intra-op)"
    )
    if result["gpu_batch_size"]:
        print(
            f"   CUDA rows: batch {result['gpu_batch_size']}, each round the set repeated (n below); "
            "ratios are to the CPU baseline"
        )
    else:
        print("   no CUDAExecutionProvider here: no GPU rows")
    for s in result["sets"]:
        repeated = f" (CUDA rows: {s['gpu_n']:,})" if result["gpu_batch_size"] else ""
        print(f"\n  {s['texts']}: {s['n']} texts{repeated}, {s['mean_words']:.0f} words on average")
        print(f"  {'engine':<32}{'sentences/s':>12}{'ratio':>8}{'cos mean':>10}{'cos min':>9}")
        for row in s["rows"]:
            cos = f"{row['cos_mean']:>10.4f}{row['cos_min']:>9.4f}" if "cos_mean" in row else f"{'-':>10}{'-':>9}"
            print(f"  {row['engine']:<32}{row['sentences_per_s']:>12,.1f}{row['ratio']:>7.2f}x{cos}")
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


LATENCY_S = 20.0
# The load at half rate is shaped like the MovieLens replay the rate was measured on (~8 users
# in a batch of 256): sessions of SESSION events of one existing user. Every PROBE_EVERY-th
# event is a new user's first instead, which always gives a change event.
SESSION = 32
PROBE_EVERY = 100


def _latency_at_rate(
    settings: Settings, rate: float, seconds: float, users: list[str], items: list[str], first_ts_ms: int
) -> dict[str, Any]:
    """Behaviours produced at ``rate`` per second for ``seconds``: sessions of existing users
    acting on random items, and every PROBE_EVERY-th a new user's first event, which (the model
    being seeded) always gives a change event. Latency: from the produce call to the arrival at
    a consumer of the changes topic of the change event whose ``source`` is that event's
    (partition, offset), as the producer's delivery report gave it."""
    import threading

    from confluent_kafka import OFFSET_END, TopicPartition

    from stream.kafka import consumer, producer
    from stream.records import ACTIONS

    arrived: dict[tuple[int, int], float] = {}  # written by the reader thread
    produced: dict[tuple[int, int], float] = {}
    probes: list[tuple[int, int]] = []
    stop = threading.Event()
    reader = consumer(settings.bootstrap, f"bench-latency-{os.getpid()}", **{"enable.auto.commit": False})
    reader.assign([TopicPartition(settings.topic_changes, p, OFFSET_END) for p in range(settings.partitions)])

    def read_changes() -> None:
        while not stop.is_set():
            msg = reader.poll(0.05)
            if msg is None or msg.error():
                continue
            source = json.loads(msg.value()).get("source")
            if source and source["topic"] == settings.topic_behaviors:
                arrived[(source["partition"], source["offset"])] = time.monotonic()

    thread = threading.Thread(target=read_changes, daemon=True)
    thread.start()
    time.sleep(2.0)  # the reader resolves the end offsets before the first event
    out = producer(settings.bootstrap)
    out.list_topics(settings.topic_behaviors, timeout=10)  # connected before the clock starts
    rng = np.random.default_rng(0)
    total = int(rate * seconds)
    sessions = rng.choice(users, size=total // SESSION + 1)
    started = time.monotonic()
    for n in range(total):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        probe = n % PROBE_EVERY == 0
        user = f"latency-probe-{n}" if probe else str(sessions[n // SESSION])
        doc = {
            "event_id": f"latency-{n}", "user_id": user, "item_id": items[rng.integers(len(items))],
            "action": ACTIONS[rng.integers(len(ACTIONS))], "ts": first_ts_ms + n,
        }
        sent_at = time.monotonic()

        def delivered(err: Any, msg: Any, at: float = sent_at, probe: bool = probe) -> None:
            if err is None:
                produced[(msg.partition(), msg.offset())] = at
                if probe:
                    probes.append((msg.partition(), msg.offset()))

        out.produce(settings.topic_behaviors, key=user.encode(), value=json.dumps(doc).encode(), on_delivery=delivered)
        out.poll(0)
    achieved = total / (time.monotonic() - started)
    out.flush(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(k in arrived for k in probes):
        time.sleep(0.2)
    stop.set()
    thread.join()
    reader.close()
    latencies_ms = np.array([(arrived[k] - t) * 1e3 for k, t in produced.items() if k in arrived])
    return {
        "target_per_s": rate,
        "achieved_per_s": achieved,
        "seconds": seconds,
        "events": total,
        "probes": len(probes),
        "probes_changed": sum(k in arrived for k in probes),
        "matched": len(latencies_ms),
        "p50_ms": float(np.percentile(latencies_ms, 50)) if len(latencies_ms) else None,
        "p99_ms": float(np.percentile(latencies_ms, 99)) if len(latencies_ms) else None,
        "max_ms": float(latencies_ms.max()) if len(latencies_ms) else None,
    }


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
    providers, precision = list(encoder.providers), encoder.precision
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
            idle_since = time.monotonic()  # the throughput phase leaves the owner updates to fold in
            worker.settled(quiet_s=1.0, timeout_s=300)
            settled_s = time.monotonic() - idle_since
            latency = _latency_at_rate(
                settings, behavior_rate / 2, LATENCY_S, sorted({u for u, _ in ratings}),
                [item_id for item_id, _ in movies], ratings[-1][1]["ts"] + 1,
            )
        finally:
            worker.stop()
    return {
        "precision": precision,
        "providers": providers,
        "repeats": repeats,
        "reviews": len(reviews),
        "behaviours": len(ratings),
        "encoder_reviews_per_s": encoder_rate,
        "worker_reviews_per_s": review_rate,
        "worker_behaviours_per_s": behavior_rate,
        "settled_s": settled_s,
        "latency_at_half_load": latency,
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
    lat = result["latency_at_half_load"]
    print(
        f"\n  the worker was idle {result['settled_s']:.1f} s after the last behaviour was applied (model updates "
        f"folded in, sweeps done); then half the behaviour rate: {lat['events']:,} behaviours at {lat['achieved_per_s']:,.0f}/s (target "
        f"{lat['target_per_s']:,.0f}/s) for {lat['seconds']:g} s, sessions of {SESSION} events of one user, "
        f"every {PROBE_EVERY}th event a new user's first; produce -> change event at a consumer of the "
        f"changes topic, {lat['matched']:,} matched by source offset ({lat['probes_changed']:,} of "
        f"{lat['probes']:,} new users):"
    )
    if lat["matched"]:
        print(f"  p50 {lat['p50_ms']:,.0f} ms, p99 {lat['p99_ms']:,.0f} ms, max {lat['max_ms']:,.0f} ms")


# --- section 3: user state ---------------------------------------------------------------

STATE_DIM = 384  # the encoder's (all-MiniLM-L6-v2)
STATE_USERS = (1_000, 10_000, 100_000)
ROW_BUDGET = 2048  # bytes per user row the users table aims at
SYNTHETIC_ITEMS = 2_000
T0_S = 1_700_000_000


def _random_catalogue(item_ids: list[str], seed: int = 0) -> dict[str, CatalogueItem]:
    from stream.catalogue import CatalogueItem

    rows = np.random.default_rng(seed).standard_normal((len(item_ids), STATE_DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return {item_id: CatalogueItem(row, ("genre",)) for item_id, row in zip(item_ids, rows)}


def _seeded(
    settings: Settings, docs: list[dict[str, Any]], catalogue: Mapping[str, CatalogueItem]
) -> tuple[Segmentation, Pipeline]:
    """The model owner, seeded as it seeds (k-means++ once ``seed_users`` users are known) on
    the vectors of the first users of ``docs`` after their first event, and a worker's pipeline
    holding that version as published on the model topic."""
    from models.segmentation import new_segmentation
    from stream.pipeline import Pipeline

    owner = new_segmentation(settings, STATE_DIM)
    update = owner.new_update(settings)
    for doc in docs:
        if len(update.stats.users) == settings.seed_users:
            break
        if doc["user_id"] not in update.stats.users:
            update.stats.observe(doc["user_id"], catalogue[doc["item_id"]].vector, None)
    owner.apply(update, 0)
    worker = new_segmentation(settings, STATE_DIM)
    worker.adopt(new_segmentation(settings, STATE_DIM).restore(owner.to_bytes()))
    return owner, Pipeline(settings, worker)


def _behaviour_messages(settings: Settings, docs: Iterable[dict[str, Any]], first_offset: int = 0) -> list[Message]:
    from stream.pipeline import Message

    return [
        Message(settings.topic_behaviors, 0, first_offset + n, str(d["user_id"]).encode(), json.dumps(d).encode())
        for n, d in enumerate(docs)
    ]


def _worker_batches(
    pipeline: Pipeline,
    messages: list[Message],
    table: dict[str, Any],
    catalogue: Mapping[str, CatalogueItem],
    rows: bool = True,
) -> list[bytes]:
    """The worker's agent per micro-batch, minus Kafka: prepare, apply with the states read
    from ``table``, write the touched users back, serialise the model update (returned, for
    the owner). ``rows``: the table holds rows as the Faust table does; else the states."""
    from stream.user_state import UserState

    no_texts = np.zeros((0, STATE_DIM), dtype=np.float32)

    def load_state(user_id: str) -> UserState | None:
        stored = table.get(user_id)
        return UserState.from_bytes(stored) if rows and stored is not None else stored

    updates = []
    size = pipeline.settings.batch_size
    for begin in range(0, len(messages), size):
        result = pipeline.apply(pipeline.prepare(messages[begin : begin + size]), no_texts, load_state, catalogue.get)
        for user_id, state in result.states.items():
            table[user_id] = state.to_bytes() if rows else state
        if result.update is not None:
            updates.append(result.update.to_bytes())
    return updates


def movielens_rows(settings: Settings) -> dict[str, Any]:
    """All MovieLens-100k ratings through the worker path: bytes per user row; the vector read
    back from each row against the same events folded in float32 without leaving memory."""
    from stream import movielens
    from stream.user_state import UserState

    catalogue = _random_catalogue([m.item_id for m in movielens.movies()])
    docs = [movielens.behavior_event(r) for r in movielens.ratings()]
    messages = _behaviour_messages(settings, docs)
    table: dict[str, Any] = {}
    exact: dict[str, Any] = {}
    _worker_batches(_seeded(settings, docs, catalogue)[1], messages, table, catalogue)
    _worker_batches(_seeded(settings, docs, catalogue)[1], messages, exact, catalogue, rows=False)
    states = {u: UserState.from_bytes(raw) for u, raw in table.items()}
    sizes = np.array([len(raw) for raw in table.values()])
    digests = np.array([len(s.seen) for s in states.values()])
    items = np.array([len(s.items) for s in states.values()])
    over = sizes > ROW_BUDGET
    cosines = np.array([float(states[u].vector @ exact[u].vector) for u in states if exact[u].vector is not None])
    return {
        "users": len(sizes),
        "events": len(messages),
        "bytes": {"median": float(np.median(sizes)), "p95": float(np.percentile(sizes, 95)), "max": int(sizes.max())},
        "budget": ROW_BUDGET,
        "over_budget": int(over.sum()),
        "digests_over": [int(digests[over].min()), int(np.median(digests[over])), int(digests[over].max())] if over.any() else None,
        "items_over_median": int(np.median(items[over])) if over.any() else None,
        "digests_under_max": int(digests[~over].max()),
        "horizon_days": settings.dedup_horizon_days,
        "cosine": {"min": float(cosines.min()), "median": float(np.median(cosines))},
    }


def _synthetic_events(users: Iterable[int], first_offset: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """One behaviour per entry of ``users``, a second of event time apart."""
    from stream.records import ACTIONS

    return [
        {
            "event_id": f"syn-{first_offset + n}",
            "user_id": str(u),
            "item_id": f"item-{rng.integers(SYNTHETIC_ITEMS)}",
            "action": ACTIONS[rng.integers(len(ACTIONS))],
            "ts": (T0_S + first_offset + n) * 1000,
        }
        for n, u in enumerate(users)
    ]


def per_event_cost(settings: Settings, n_events: int, repeats: int) -> list[dict[str, Any]]:
    """Microseconds per behaviour event on a table of each size in STATE_USERS: every user has
    a row (one event each, untimed), then ``n_events`` events of users drawn at random, timed
    over a fresh copy of the table per round (rounds alternate the sizes). The model owner
    then applies one round's updates, once, its segment sizes and reservoir first filled as in
    steady state (the reservoir: the latest ``reservoir_users`` users)."""
    from models.segmentation import ModelUpdate
    from stream.user_state import UserState

    catalogue = _random_catalogue([f"item-{n}" for n in range(SYNTHETIC_ITEMS)])
    rng = np.random.default_rng(0)
    runs = {}
    for users in STATE_USERS:
        first = _synthetic_events(range(users), 0, rng)
        owner, pipeline = _seeded(settings, first, catalogue)
        table: dict[str, Any] = {}
        _worker_batches(pipeline, _behaviour_messages(settings, first), table, catalogue)
        timed = _behaviour_messages(settings, _synthetic_events(rng.integers(users, size=n_events), users, rng), users)
        runs[users] = {"owner": owner, "pipeline": pipeline, "table": table, "timed": timed, "seconds": []}
    for _ in range(repeats):
        for run in runs.values():
            table = dict(run["table"])
            started = time.perf_counter()
            run["updates"] = _worker_batches(run["pipeline"], run["timed"], table, catalogue)
            run["seconds"].append(time.perf_counter() - started)
            run["after"] = table
    rows = []
    for users, run in runs.items():
        owner = run["owner"]
        fill = owner.new_update(settings)  # segment sizes, and the latest users in the reservoir
        for n, (user_id, raw) in enumerate(run["table"].items()):
            state = UserState.from_bytes(raw)
            fill.stats.move(None, state.segment)
            if n >= users - owner.model.reservoir_size:
                fill.stats.observe(user_id, state.vector, state.segment)
        owner.apply(fill, 1)
        version = owner.version
        model = owner.model
        # The pass's refreshes are all warm (cold every sys.maxsize-th); then one refresh of each
        # kind on the final reservoir gives the cold ones' extra cost, added pro rata.
        cold_refresh_every, model.cold_refresh_every = model.cold_refresh_every, sys.maxsize
        started = time.perf_counter()
        for offset, raw in enumerate(run["updates"], start=2):
            owner.apply(ModelUpdate.from_bytes(raw), offset)
        owner_s = time.perf_counter() - started
        # counted in the model's log, which keeps its latest 50 events: enough below ~25,000 events
        refreshes = sum(e["event"] == "refresh" and e["version"] > version for e in owner.model.events)
        refresh_s = {}
        for kind, every in (("cold", 1), ("warm", sys.maxsize)):
            model.cold_refresh_every = every
            started = time.perf_counter()
            model.refresh()
            refresh_s[kind] = time.perf_counter() - started
        model.cold_refresh_every = cold_refresh_every
        amortized = (refresh_s["cold"] - refresh_s["warm"]) / (cold_refresh_every * model.refresh_every)
        rows.append({
            "users": users,
            "events": n_events,
            "worker_us_per_event": statistics.median(run["seconds"]) / n_events * 1e6,
            "worker_rounds_s": run["seconds"],
            "row_bytes_mean": float(np.mean([len(raw) for raw in run["after"].values()])),
            "owner_us_per_event": owner_s / n_events * 1e6,
            "owner_us_per_event_with_cold_share": (owner_s / n_events + amortized) * 1e6,
            "owner_warm_refresh_s": refresh_s["warm"],
            "owner_cold_refresh_s": refresh_s["cold"],
            "owner_reservoir": len(owner.model.reservoir),
            "owner_refreshes": refreshes,
        })
    return rows


def state_section(n_events: int, repeats: int) -> dict[str, Any]:
    from models.clustering import StreamingKMeans
    from stream.config import load_settings

    settings = load_settings()
    return {
        "catalogue": f"random {STATE_DIM}-d unit vectors",
        "batch_size": settings.batch_size,
        "repeats": repeats,
        "movielens": movielens_rows(settings),
        "cost": per_event_cost(settings, n_events, repeats),
        "refresh_every": settings.refresh_every,
        "cold_refresh_every": StreamingKMeans.cold_refresh_every,
    }


def print_state_section(result: dict[str, Any]) -> None:
    ml, cost = result["movielens"], result["cost"]
    print(
        f"\n3. User state: the worker's batch path without Kafka (batches of {result['batch_size']}, rows "
        f"round-tripped through UserState bytes); catalogue: {result['catalogue']}"
    )
    b = ml["bytes"]
    print(
        f"\n  MovieLens-100k, {ml['events']:,} ratings, {ml['users']} users: bytes per user row median "
        f"{b['median']:,.0f}, p95 {b['p95']:,.0f}, max {b['max']:,}; {ml['over_budget']} users over {ml['budget']:,}"
    )
    if ml["digests_over"]:
        lo, mid, hi = ml["digests_over"]
        print(
            f"  those hold {lo}-{hi} event digests (median {mid}) inside the {ml['horizon_days']:g}-day dedup "
            f"horizon and a median of {ml['items_over_median']} items; no user under it holds more than "
            f"{ml['digests_under_max']}"
        )
    print(
        f"  user vector read back from its row vs kept in float32 memory: cosine min "
        f"{ml['cosine']['min']:.7f}, median {ml['cosine']['median']:.7f}"
    )
    print(
        f"\n  per event, {cost[0]['events']:,} behaviours on a table of N users (worker: median of "
        f"{result['repeats']} rounds; owner: one pass, a warm re-clustering every {result['refresh_every']} updates, "
        f"then one cold and one warm re-clustering timed on its final reservoir; 'with cold' adds the cold "
        f"ones' extra cost pro rata, one in {result['cold_refresh_every']})"
    )
    print(
        f"  {'users':>9}{'worker us/event':>17}{'row bytes':>11}{'owner us/event':>16}{'with cold':>11}"
        f"{'reservoir':>11}{'refreshes':>11}{'warm s':>8}{'cold s':>8}"
    )
    for row in cost:
        print(
            f"  {row['users']:>9,}{row['worker_us_per_event']:>17,.1f}{row['row_bytes_mean']:>11,.0f}"
            f"{row['owner_us_per_event']:>16,.1f}{row['owner_us_per_event_with_cold_share']:>11,.1f}"
            f"{row['owner_reservoir']:>11,}{row['owner_refreshes']:>11}"
            f"{row['owner_warm_refresh_s']:>8.2f}{row['owner_cold_refresh_s']:>8.2f}"
        )
    for small, large in zip(cost, cost[1:]):
        print(
            f"  ratio {large['users']:,} / {small['users']:,} users: worker "
            f"{large['worker_us_per_event'] / small['worker_us_per_event']:.2f}x, owner with cold "
            f"{large['owner_us_per_event_with_cold_share'] / small['owner_us_per_event_with_cold_share']:.2f}x"
        )


def command(
    n_texts: int = 256,
    repeats: int = 3,
    threads: int | None = None,
    gpu_batch: int = 256,
    gpu_texts: int = 16_384,
    end_to_end: bool = False,
    reviews: int = 2225,
    ratings: int = 100_000,
    state: bool = False,
    state_events: int = 10_000,
    encoder: bool = True,
    as_json: bool = False,
) -> int:
    if min(n_texts, repeats, state_events, gpu_batch, gpu_texts) < 1:
        raise SystemExit("--texts, --repeats, --state-events, --gpu-batch and --gpu-texts must be at least 1")
    hw = hardware()
    report: dict[str, Any] = {"hardware": hw}
    if encoder:
        report["encoder"] = encoder_section(n_texts, repeats, threads, gpu_batch, gpu_texts)
    if end_to_end:
        report["end_to_end"] = end_to_end_section(reviews, ratings, repeats)
    if state:
        report["state"] = state_section(state_events, repeats)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(hardware_line(hw))
    if encoder:
        print_encoder_section(report["encoder"])
    if end_to_end:
        print_end_to_end_section(report["end_to_end"])
    if state:
        print_state_section(report["state"])
    return 0
