"""``segstream stress``: two workers restarted one after the other while events flow, again and
again, each round checked event by event.

A round is what an operator does on a plain rolling restart: two workers of one app id, each
with its own data dir and the RocksDB store, are fed MovieLens behaviours of a sample of users
by a producer that is not segstream's (confluent-kafka's default partitioner, CRC32, and some
null keys, so that many events are forwarded to their user's partition). Mid-stream one worker
(the model owner in half the rounds) is killed (SIGKILL) and started again at once; a while
after it is ready, the other is stopped (SIGTERM) and started again, events still flowing. Then every user's applied events plus their
dead letters must equal what was sent, and every user's latest membership record must name the
segment of their row. The first round that misses prints what the broker holds for the users
concerned (stream/tools/loss_report.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable
from typing import Any

from stream.config import Settings, load_settings
from stream.datasets import movielens
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess, eventually

CRC32_PARTITIONER = {"partitioner": "consistent_random"}  # librdkafka's default, what kcat uses too


@dataclass(frozen=True)
class Scenario:
    users: int = 100
    events_per_user: int = 60
    rate: float = 100.0  # events a second
    null_keys: float = 0.1  # share of events produced without a key
    kill_after_s: tuple[float, float] = (5.0, 20.0)  # one worker is killed this long after the stream starts
    stop_after_s: tuple[float, float] = (3.0, 15.0)  # the other is stopped this long after it is ready again
    session_timeout_s: float = 6.0


@dataclass
class RoundResult:
    seed: int
    sent: int
    applied: int
    dead_letters: int
    users: int
    users_exact: int
    membership_agrees: int
    seconds: float
    report: str = ""
    dead_letter_reasons: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.users_exact == self.users and self.membership_agrees == self.users

    def line(self) -> str:
        verdict = "ok" if self.ok else "MISS"
        return (
            f"round seed={self.seed}: {verdict}: {self.applied:,} applied + {self.dead_letters:,} dead letters of "
            f"{self.sent:,} sent {self.dead_letter_reasons or ''}; {self.users_exact}/{self.users} users exact; "
            f"membership agrees with the row for {self.membership_agrees}/{self.users}; {self.seconds:.0f} s"
        )


def events_for(seed: int, scenario: Scenario) -> list[dict[str, Any]]:
    """A seeded sample of users, each with their first ``events_per_user`` ratings as behaviours,
    in time order shuffled within a day (another order for every seed, within the dedup horizon)."""
    rng = random.Random(seed)
    ratings = movielens.ratings()
    per_user = Counter(r.user_id for r in ratings)
    eligible = sorted((u for u, n in per_user.items() if n >= scenario.events_per_user), key=int)
    chosen = set(rng.sample(eligible, min(scenario.users, len(eligible))))
    taken: Counter[str] = Counter()
    picked = []
    for rating in ratings:
        if rating.user_id in chosen and taken[rating.user_id] < scenario.events_per_user:
            taken[rating.user_id] += 1
            picked.append((rating.ts_ms + rng.uniform(0, 86_400_000), movielens.behavior_event(rating)))
    return [event for _, event in sorted(picked, key=lambda pair: pair[0])]


def produce_at_rate(settings: Settings, events: list[dict[str, Any]], scenario: Scenario, seed: int) -> None:
    from stream.kafka import cluster_config, producer

    rng = random.Random(seed + 1)
    out = producer(cluster_config(settings), **CRC32_PARTITIONER)
    started = time.monotonic()
    for n, event in enumerate(events):
        key = None if rng.random() < scenario.null_keys else event["user_id"].encode()
        out.produce(settings.topic_behaviors, key=key, value=json.dumps(event).encode())
        out.poll(0)
        time.sleep(max(0.0, started + (n + 1) / scenario.rate - time.monotonic()))
    if out.flush(60):
        raise RuntimeError("the stress producer could not deliver every event")


def run_round(base: Settings, workdir: Path, seed: int, scenario: Scenario) -> RoundResult:
    """One rolling restart under load (module docstring); ``base`` names the broker and model cache."""
    from stream.kafka import ensure_topics

    started = time.monotonic()
    name = f"stress-{seed}-{time.time_ns() % 10**8}"
    settings = dataclasses.replace(
        base, app_id=name, **{f"topic_{t}": f"{name}-{t}" for t in (
            "reviews", "behaviors", "items", "changes", "membership", "model", "model_updates", "dead_letters")},
        data_dir=str(workdir / name / "a"), web_port=free_port(), session_timeout_s=scenario.session_timeout_s,
    )
    ensure_topics(settings)
    other = dataclasses.replace(settings, data_dir=str(workdir / name / "b"), web_port=free_port())
    logs = workdir / name
    workers = [WorkerProcess(settings, logs / "a.log").start(), WorkerProcess(other, logs / "b.log").start()]
    try:
        eventually(lambda: [w.health()["input_partitions"] for w in workers], all, 60)
        events = events_for(seed, scenario)
        publish_catalogue(settings, {e["item_id"] for e in events}, workers)
        rng = random.Random(seed + 2)
        owner = next((n for n, w in enumerate(workers) if w.health()["model"]["owner"]), 0)
        killed = owner if rng.random() < 0.5 else 1 - owner  # the model owner in half the rounds
        feed = threading.Thread(target=produce_at_rate, args=(settings, events, scenario, seed), daemon=True)
        feed.start()
        time.sleep(rng.uniform(*scenario.kill_after_s))
        workers[killed] = restarted(workers[killed], "after-kill", kill=True)
        time.sleep(rng.uniform(*scenario.stop_after_s))
        workers[1 - killed] = restarted(workers[1 - killed], "after-stop", kill=False)
        feed.join()
        return check(settings, workers[0], events, seed, started)
    finally:
        for worker in workers:
            worker.stop(kill=True)


def restarted(worker: WorkerProcess, label: str, kill: bool) -> WorkerProcess:
    """``worker`` killed (SIGKILL) or stopped (SIGTERM), then started again at once."""
    worker.stop(kill=kill)
    log = worker.log_path.with_name(f"{worker.log_path.stem}-{label}.log")
    return WorkerProcess(worker.settings, log).start()


def publish_catalogue(settings: Settings, item_ids: set[str], workers: tuple[WorkerProcess, ...]) -> None:
    from stream.kafka import cluster_config, producer

    movies = [m for m in movielens.movies() if m.item_id in item_ids]
    out = producer(cluster_config(settings))
    for movie in movies:
        out.produce(settings.topic_items, key=movie.item_id.encode(), value=json.dumps(movielens.item_event(movie)).encode())
    out.flush(60)
    for worker in workers:
        worker.wait_until(lambda h: h["catalogue_items"] == len(movies), 180, "the catalogue")


def check(settings: Settings, worker: WorkerProcess, events: list[dict[str, Any]], seed: int, started: float) -> RoundResult:
    """Every user's applied events and dead letters against what was sent, once they add up or
    two minutes have passed; the loss report for the users that miss."""
    from stream.tools import loss_report
    from stream.worker.output import reason_of

    sent = Counter(e["user_id"] for e in events)
    dead: Counter[str] = Counter()
    reasons: Counter[str] = Counter()

    def counted() -> dict[str, int]:
        letters = [json.loads(m.value()) for m in loss_report.records(settings, settings.topic_dead_letters, 1.0)]
        dead.clear()
        dead.update(letter_user(letter) for letter in letters)
        reasons.clear()
        reasons.update(reason_of(letter["error"]) for letter in letters)
        return {u: applied_of(worker, u) + dead[u] for u in sent}

    seen = eventually(counted, lambda c: c == dict(sent), 120, every_s=2.0)
    # A sweep may be between a row and its membership record: disagreements must last.
    disagree = eventually(lambda: membership_disagreements(settings, worker, sent), lambda d: not d, 30, every_s=2.0)
    wrong = sorted(u for u in sent if seen[u] != sent[u])
    result = RoundResult(
        seed, sum(sent.values()), sum(seen.values()) - sum(dead.values()), sum(dead.values()), len(sent),
        len(sent) - len(wrong), len(sent) - len(disagree), time.monotonic() - started, dead_letter_reasons=dict(reasons),
    )
    result.report = "\n".join(
        ([loss_report.user_rows(settings, wrong)] if wrong else []) + [f"membership of {line}" for line in disagree]
    )
    return result


def membership_disagreements(settings: Settings, worker: WorkerProcess, users: Iterable[str]) -> list[str]:
    """"user: row segment S (assigned under version V), latest membership record R" for every
    user whose latest membership record does not name the segment of their row."""
    from stream.tools import loss_report

    latest = {m.key(): json.loads(m.value()) for m in loss_report.records(settings, settings.topic_membership)}
    found = []
    for user in users:
        row = worker.get(f"/users/{user}")[1] or {}
        record = latest.get(user.encode())
        if (record or {}).get("segment") != row.get("segment"):
            found.append(f"{user}: row segment {row.get('segment')} (assigned under version {row.get('assigned_under_version')}), "
                         f"latest membership record {record}")
    return found


def applied_of(worker: WorkerProcess, user_id: str) -> int:
    status, view = worker.get(f"/users/{user_id}")
    return sum(view["actions"].values()) if status == 200 else 0


def letter_user(letter: dict[str, Any]) -> str:
    return str((letter.get("event") or {}).get("user_id") or json.loads(letter.get("value") or "{}").get("user_id"))


def add_command(sub: Any) -> None:
    p = sub.add_parser("stress", help="two workers restarted one after the other while events flow, checked event by event")
    p.add_argument("--rounds", type=int, default=10, help="rounds, one event order each (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first round; the next ones count up (default 0)")
    p.add_argument("--users", type=int, default=Scenario.users, help="users per round (default 100)")
    p.add_argument("--events-per-user", type=int, default=Scenario.events_per_user, help="(default 60)")
    p.add_argument("--rate", type=float, default=Scenario.rate, help="events a second (default 100)")
    p.add_argument("--keep-going", action="store_true", help="run every round even after a miss")
    p.add_argument("--workdir", default=".segstream/stress", help="logs and data dirs (default .segstream/stress)")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(users=args.users, events_per_user=args.events_per_user, rate=args.rate)
    misses = 0
    with EmbeddedBroker(log_path=workdir / "broker.log").running() as broker:
        base = load_settings(bootstrap=broker.bootstrap, store="rocksdb://")
        for seed in range(args.seed, args.seed + args.rounds):
            result = run_round(base, workdir, seed, scenario)
            print(result.line(), flush=True)
            if not result.ok:
                misses += 1
                print(result.report, flush=True)
                if not args.keep_going:
                    break
    print(f"stress: {misses} of the rounds run missed; logs in {workdir}", flush=True)
    return 1 if misses else 0
