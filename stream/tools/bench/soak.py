"""Bench section ``--soak MINUTES``: one worker's memory over time.

One worker process with the store operators run (the settings' default, RocksDB on disk, in a
temporary data dir) on the embedded broker; the MovieLens catalogue; then behaviours at a steady
rate from synthetic users over the real items, timestamps advancing, for MINUTES. The worker's
resident set (VmRSS) is sampled every few seconds. The verdict: over the second half of the
run, RSS stays within SPREAD_BOUND_PCT of its mean ((max - min) / mean): the bound it is held to.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import Settings, load_settings
from stream.contract.records import ACTIONS
from stream.datasets import movielens
from stream.kafka import cluster_config, ensure_topics, producer, publish
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess

SPREAD_BOUND_PCT = 10.0
SAMPLE_EVERY_S = 5.0
DRAIN_TIMEOUT_S = 300.0  # for the worker to apply what is still queued when producing stops


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since producing started
    rss_mb: float
    applied: int  # the worker's counters.applied at the time


def summarise(samples: list[Sample], seconds: float, bound_pct: float = SPREAD_BOUND_PCT) -> dict[str, Any]:
    """RSS at start, half and end, and over the second half (t >= seconds / 2): min, max, mean and
    the spread (max - min) as a percentage of the mean; ``passed`` when the spread is within
    ``bound_pct``. Growth per minute over each half: the slope of a least-squares line."""
    if not samples:
        raise ValueError("no RSS samples")
    half = seconds / 2
    second = [s.rss_mb for s in samples if s.t_s >= half] or [samples[-1].rss_mb]
    mean = float(np.mean(second))
    spread = (max(second) - min(second)) / mean * 100
    at_half = min(samples, key=lambda s: abs(s.t_s - half))

    def slope(part: list[Sample]) -> float | None:
        if len(part) < 2 or part[-1].t_s == part[0].t_s:
            return None
        return float(np.polyfit([s.t_s for s in part], [s.rss_mb for s in part], 1)[0] * 60)

    return {
        "start_mb": samples[0].rss_mb,
        "half_mb": at_half.rss_mb,
        "end_mb": samples[-1].rss_mb,
        "second_half_min_mb": min(second),
        "second_half_max_mb": max(second),
        "second_half_mean_mb": mean,
        "second_half_spread_pct": spread,
        "first_half_mb_per_min": slope([s for s in samples if s.t_s <= half]),
        "second_half_mb_per_min": slope([s for s in samples if s.t_s >= half]),
        "bound_pct": bound_pct,
        "passed": spread <= bound_pct,
    }


def behaviour(n: int, users: int, items: list[str], rng: np.random.Generator, ts_ms: int) -> tuple[str, bytes]:
    """The ``n``-th soak event: (user id, JSON value) of a random one of ``users`` synthetic users
    acting on a random real item."""
    user = f"soak-{rng.integers(users)}"
    doc = {
        "event_id": f"soak-{n}", "user_id": user, "item_id": items[rng.integers(len(items))],
        "action": ACTIONS[rng.integers(len(ACTIONS))], "ts": ts_ms,
    }
    return user, json.dumps(doc).encode()


def run_soak(
    settings: Settings, worker: WorkerProcess, seconds: float, rate: float, users: int, items: list[str],
    every_s: float = SAMPLE_EVERY_S,
) -> dict[str, Any]:
    """Produce behaviours at ``rate``/s for ``seconds``, sampling the worker's RSS every ``every_s``;
    then wait for the worker to apply them all (a final sample). Event times follow the wall clock."""
    out = producer(cluster_config(settings))
    rng = np.random.default_rng(0)
    applied_before = _applied(worker)
    samples: list[Sample] = []
    produced = 0
    started = time.monotonic()
    next_sample = started
    while (now := time.monotonic()) - started < seconds:
        if now >= next_sample:
            samples.append(Sample(now - started, rss_mb(worker.pid), _applied(worker) - applied_before))
            next_sample += every_s
        due = min(int((now - started) * rate), int(seconds * rate))
        ts_ms = int(time.time() * 1000)
        while produced < due:
            user, value = behaviour(produced, users, items, rng, ts_ms)
            try:
                out.produce(settings.topic_behaviors, key=user.encode(), value=value)
            except BufferError:
                out.poll(0.05)
                continue
            produced += 1
        out.poll(0)
        time.sleep(0.005)
    produce_s = time.monotonic() - started
    if out.flush(60):
        raise RuntimeError("the broker did not acknowledge every soak event")
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while (applied := _applied(worker) - applied_before) < produced and time.monotonic() < deadline:
        time.sleep(0.5)
    samples.append(Sample(time.monotonic() - started, rss_mb(worker.pid), applied))
    health = worker.health() or {}
    return {
        "seconds": seconds,
        "target_per_s": rate,
        "achieved_per_s": produced / produce_s,
        "users": users,
        "produced": produced,
        "applied": applied,
        "dead_letters": health.get("counters", {}).get("dead_letters"),
        "held_behaviours": (health.get("held_behaviours") or {}).get("behaviours"),
        "samples": [asdict(s) for s in samples],
        "rss": summarise(samples, seconds),
    }


def _applied(worker: WorkerProcess) -> int:
    health = worker.health()
    if not health:
        raise RuntimeError(f"the worker stopped answering /healthz; see {worker.log_path}")
    return int(health["counters"]["applied"])


def soak_section(minutes: float, rate: float, users: int) -> dict[str, Any]:
    """The soak on a broker and worker of its own; the worker keeps its tables in a temporary dir."""
    with tempfile.TemporaryDirectory(prefix="segstream-soak-") as tmp, EmbeddedBroker(
        log_path=Path(tmp) / "broker.log"
    ).running() as broker:
        settings = load_settings(
            bootstrap=broker.bootstrap, app_id="soak", data_dir=str(Path(tmp) / "data"), web_port=free_port(),
            session_timeout_s=4.0,
        )
        ensure_topics(settings)
        worker = WorkerProcess(settings, Path(tmp) / "worker.log").start()
        try:
            movies = [(m.item_id, movielens.item_event(m)) for m in movielens.movies()]
            publish(settings, settings.topic_items, movies, "catalogue")
            worker.wait_until(lambda h: bool(h) and h["catalogue_items"] >= len(movies), 600, "the catalogue")
            result = run_soak(settings, worker, minutes * 60, rate, users, [item_id for item_id, _ in movies])
        finally:
            worker.stop()
    return {"store": settings.store, "partitions": settings.partitions, **result}


def print_soak_section(result: dict[str, Any]) -> None:
    rss = result["rss"]
    minutes = result["seconds"] / 60
    print(
        f"\nSoak: one worker ({result['store']}, {result['partitions']} partitions), {minutes:g} min of behaviours "
        f"at {result['achieved_per_s']:,.0f}/s (target {result['target_per_s']:,.0f}/s) over {result['users']:,} users"
    )
    print(
        f"  events applied {result['applied']:,} of {result['produced']:,} produced "
        f"(dead letters {result['dead_letters']}, held {result['held_behaviours']})"
    )
    if result["applied"] < result["produced"]:
        print(
            f"  the worker fell behind: {result['produced'] - result['applied']:,} events were not applied "
            f"{DRAIN_TIMEOUT_S:g} s after producing stopped (another load on the CPUs?)"
        )
    print(
        f"  RSS: start {rss['start_mb']:,.0f} MB, half {rss['half_mb']:,.0f} MB, end {rss['end_mb']:,.0f} MB "
        f"({len(result['samples'])} samples)"
    )
    slopes = [rss["first_half_mb_per_min"], rss["second_half_mb_per_min"]]
    if None not in slopes:
        print(f"  growth: first half {slopes[0]:+.1f} MB/min, second half {slopes[1]:+.1f} MB/min")
    verdict = "PASS" if rss["passed"] else "FAIL"
    print(
        f"  second half: min {rss['second_half_min_mb']:,.0f} MB, max {rss['second_half_max_mb']:,.0f} MB, "
        f"spread {rss['second_half_spread_pct']:.1f}% of its mean {rss['second_half_mean_mb']:,.0f} MB: "
        f"{verdict} (bound {rss['bound_pct']:g}%)"
    )
