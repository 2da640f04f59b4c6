"""Bench section 3 (``--state``, minutes): user state and the per-event cost, without Kafka.

The worker's per-batch path (prepare, apply with each touched user's row read with
``UserState.from_bytes`` and written back with ``to_bytes`` as the ``users`` table does, the
model update serialised) through :class:`LocalRun`. (a) All 100k MovieLens ratings: bytes per
user row, and each user's vector read back from its row against the same events folded in
float32 memory. (b) Synthetic behaviours on tables of 1,000 to 1,000,000 users: microseconds per
event in the worker, and in the model owner (one pass over the same updates), and the largest
table's cost over the smallest's. A table's first 10,000 users get their rows through the
worker's path; the others are copies of those rows under their own ids (a second for 1M rows,
where the path would take minutes; a row's cost does not depend on whose it is). The catalogue
is random unit vectors of the encoder's dimension: row sizes and costs do not depend on what
vectors mean.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from models.clustering import KMeansParams
from models.segmentation import ModelUpdate
from stream.config import Settings, load_settings
from stream.contract.records import ACTIONS, Message
from stream.core.catalogue import CatalogueItem
from stream.core.local_run import LocalRun
from stream.core.pipeline import BatchResult
from stream.core.user_state import UserState
from stream.core.user_store import InMemoryUserStore, UserStore
from stream.datasets import movielens

STATE_DIM = 384  # the encoder's (all-MiniLM-L6-v2)
STATE_USERS = (1_000, 10_000, 100_000, 1_000_000)
TEMPLATE_USERS = 10_000  # users per table whose rows go through the worker's path; the rest copy them
ROW_BUDGET = 2048  # bytes per user row the users table aims at
SYNTHETIC_ITEMS = 2_000
T0_S = 1_700_000_000


class _StatesInMemory(UserStore):
    """Users kept as objects, never serialised: the float32 reference for the rows' round trip."""

    def __init__(self) -> None:
        self.states: dict[str, UserState] = {}

    def get(self, user_id: str) -> UserState | None:
        return self.states.get(user_id)

    def put_many(self, states: Iterable[UserState]) -> None:
        self.states.update((s.user_id, s) for s in states)

    def delete_many(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            self.states.pop(user_id, None)

    def user_ids(self) -> list[str]:
        return list(self.states)


def _random_catalogue(item_ids: list[str], seed: int = 0) -> dict[str, CatalogueItem]:
    rows = np.random.default_rng(seed).standard_normal((len(item_ids), STATE_DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return {item_id: CatalogueItem(row, ("genre",)) for item_id, row in zip(item_ids, rows)}


def _seeded(
    settings: Settings, docs: list[dict[str, Any]], catalogue: dict[str, CatalogueItem], users: UserStore | None = None
) -> LocalRun:
    """A worker and its owner, seeded as the owner seeds (k-means++ once ``seed_users`` users
    are known) on the vectors of the first users of ``docs`` after their first event; the
    worker holds that version as published."""
    run = LocalRun(settings, STATE_DIM, catalogue, users=users)
    update = run.segmentation.new_update()
    for doc in docs:
        if len(update.stats.users) == settings.seed_users:
            break
        if doc["user_id"] not in update.stats.users:
            update.stats.observe(doc["user_id"], catalogue[doc["item_id"]].vector, None)
    run.submit(update, BatchResult())
    return run


def _behaviour_messages(settings: Settings, docs: Iterable[dict[str, Any]], first_offset: int = 0) -> list[Message]:
    return [
        Message(settings.topic_behaviors, 0, first_offset + n, str(d["user_id"]).encode(), json.dumps(d).encode())
        for n, d in enumerate(docs)
    ]


def _worker_batches(run: LocalRun, messages: list[Message]) -> list[bytes]:
    """The worker's agent per micro-batch, minus Kafka: prepare, apply with the states read
    from the store, write the touched users back, serialise the model update (returned, for
    the owner)."""
    size = run.pipeline.settings.batch_size
    results = (run.apply(messages[begin : begin + size]) for begin in range(0, len(messages), size))
    return [result.update.to_bytes() for result in results if result.update is not None]


def movielens_rows(settings: Settings) -> dict[str, Any]:
    """All MovieLens-100k ratings through the worker path: bytes per user row; the vector read
    back from each row against the same events folded in float32 without leaving memory."""
    catalogue = _random_catalogue([m.item_id for m in movielens.movies()])
    docs = [movielens.behavior_event(r) for r in movielens.ratings()]
    messages = _behaviour_messages(settings, docs)
    rows, exact = InMemoryUserStore(), _StatesInMemory()
    _worker_batches(_seeded(settings, docs, catalogue, rows), messages)
    _worker_batches(_seeded(settings, docs, catalogue, exact), messages)
    table = rows.rows
    states = {u: UserState.from_bytes(raw) for u, raw in table.items()}
    sizes = np.array([len(raw) for raw in table.values()])
    digests = np.array([len(s.seen) for s in states.values()])
    items = np.array([len(s.items) for s in states.values()])
    over = sizes > ROW_BUDGET
    reference = exact.states
    cosines = np.array([float(states[u].vector @ reference[u].vector) for u in states if reference[u].vector is not None])
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


def _user_id(user: int) -> str:
    """Fixed width, so a copied row's id takes the template's id's place byte for byte (:func:`_copies`)."""
    return f"user-{user:07d}"


def _synthetic_events(users: Iterable[int], first_offset: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """One behaviour per entry of ``users``, a second of event time apart."""
    return [
        {
            "event_id": f"syn-{first_offset + n}",
            "user_id": _user_id(u),
            "item_id": f"item-{rng.integers(SYNTHETIC_ITEMS)}",
            "action": ACTIONS[rng.integers(len(ACTIONS))],
            "ts": (T0_S + first_offset + n) * 1000,
        }
        for n, u in enumerate(users)
    ]


def _copies(templates: dict[str, bytes], users: range) -> dict[str, bytes]:
    """Rows for ``users``: user u's is the row of the (u mod len(templates))-th template with the
    user id replaced, which is the row ``to_bytes`` writes for that state under u's id (ids of one
    width). Every 1000th copy is read back to check it: the template's state but for the id."""
    sources = list(templates.items())
    rows = {}
    for u in users:
        template_id, raw = sources[u % len(sources)]
        user_id = _user_id(u)
        rows[user_id] = raw.replace(template_id.encode(), user_id.encode(), 1)
    for u in users[::1000]:
        template_id, raw = sources[u % len(sources)]
        copy = UserState.from_bytes(rows[_user_id(u)])
        if copy.user_id != _user_id(u) or dataclasses.replace(copy, user_id=template_id).to_bytes() != (
            UserState.from_bytes(raw).to_bytes()
        ):
            raise RuntimeError(f"the copy of {template_id}'s row for {_user_id(u)} is not its state under that id")
    return rows


def _table_of(
    settings: Settings,
    users: int,
    n_events: int,
    catalogue: dict[str, CatalogueItem],
    rng: np.random.Generator,
    through_path: int = TEMPLATE_USERS,
) -> dict[str, Any]:
    """A seeded run whose table holds ``users`` users (one event each: the first ``through_path``
    through the worker's path, the others :func:`_copies` of theirs), and the timed events."""
    first = _synthetic_events(range(min(users, through_path)), 0, rng)
    store = InMemoryUserStore()
    run = _seeded(settings, first, catalogue, store)
    _worker_batches(run, _behaviour_messages(settings, first))
    templates = dict(store.rows)
    store.rows.update(_copies(templates, range(len(templates), users)))
    timed = _behaviour_messages(settings, _synthetic_events(rng.integers(users, size=n_events), users, rng), users)
    return {"run": run, "store": store, "rows": dict(store.rows), "templates": templates, "timed": timed, "seconds": []}


def _owner_pass(table: dict[str, Any]) -> dict[str, Any]:
    """The owner learns one round's updates, its segment sizes and reservoir first filled as in
    steady state; its refreshes in the pass are all warm (cold every sys.maxsize-th), then one
    refresh of each kind on the final reservoir gives the cold ones' extra cost, pro rata."""
    run: LocalRun = table["run"]
    owner, model = run.owner, run.segmentation.model
    fill = run.segmentation.new_update()  # segment sizes, and the latest users in the reservoir
    templates = [UserState.from_bytes(raw) for raw in table["templates"].values()]  # a copy's state but its id
    users = len(table["rows"])
    for u in range(max(0, users - model.params.reservoir_size), users):
        state = templates[u % len(templates)]
        fill.stats.observe(_user_id(u), state.vector, state.segment)
    run.pipeline.census.count(0, (templates[u % len(templates)].segment for u in range(users)))
    fill.stats.census = run.pipeline.census.take()
    owner.receive(fill, run.next_offset)
    version, configured = model.version, model.params
    model.params = dataclasses.replace(configured, cold_refresh_every=sys.maxsize)
    started = time.perf_counter()
    for offset, raw in enumerate(table["updates"], start=run.next_offset + 1):
        owner.receive(ModelUpdate.from_bytes(raw), offset)
    owner_s = time.perf_counter() - started
    # counted in the model's history, which keeps its latest 50 events: enough below ~25,000 events
    refreshes = sum(e["event"] == "refresh" and e["version"] > version for e in model.history)
    refresh_s = {}
    for kind, every in (("cold", 1), ("warm", sys.maxsize)):
        model.params = dataclasses.replace(configured, cold_refresh_every=every)
        started = time.perf_counter()
        with threadpool_limits(limits=owner.threads):  # as the owner runs it
            model.refresh()
        refresh_s[kind] = time.perf_counter() - started
    model.params = configured
    amortized = (refresh_s["cold"] - refresh_s["warm"]) / (configured.cold_refresh_every * configured.refresh_every)
    return {"owner_s": owner_s, "amortized_s": amortized, "refresh_s": refresh_s, "refreshes": refreshes,
            "reservoir": len(model.reservoir)}


def per_event_cost(settings: Settings, n_events: int, repeats: int) -> list[dict[str, Any]]:
    """Microseconds per behaviour event on a table of each size in STATE_USERS: every user has
    a row (one event each, untimed), then ``n_events`` events of users drawn at random, timed
    over a fresh copy of the table per round (rounds alternate the sizes). The model owner
    then learns one round's updates, once (:func:`_owner_pass`)."""
    catalogue = _random_catalogue([f"item-{n}" for n in range(SYNTHETIC_ITEMS)])
    rng = np.random.default_rng(0)
    tables = {users: _table_of(settings, users, n_events, catalogue, rng) for users in STATE_USERS}
    for _ in range(repeats):
        for table in tables.values():
            table["store"].rows = dict(table["rows"])
            started = time.perf_counter()
            table["updates"] = _worker_batches(table["run"], table["timed"])
            table["seconds"].append(time.perf_counter() - started)
            table["after"] = table["store"].rows
    rows = []
    for users, table in tables.items():
        owner = _owner_pass(table)
        rows.append({
            "users": users,
            "events": n_events,
            "worker_us_per_event": statistics.median(table["seconds"]) / n_events * 1e6,
            "worker_rounds_s": table["seconds"],
            "row_bytes_mean": float(np.mean([len(raw) for raw in table["after"].values()])),
            "owner_us_per_event": owner["owner_s"] / n_events * 1e6,
            "owner_us_per_event_with_cold_share": (owner["owner_s"] / n_events + owner["amortized_s"]) * 1e6,
            "owner_warm_refresh_s": owner["refresh_s"]["warm"],
            "owner_cold_refresh_s": owner["refresh_s"]["cold"],
            "owner_reservoir": owner["reservoir"],
            "owner_refreshes": owner["refreshes"],
        })
    return rows


def state_section(n_events: int, repeats: int) -> dict[str, Any]:
    settings = load_settings()
    return {
        "catalogue": f"random {STATE_DIM}-d unit vectors",
        "batch_size": settings.batch_size,
        "repeats": repeats,
        "movielens": movielens_rows(settings),
        "cost": per_event_cost(settings, n_events, repeats),
        "refresh_every": settings.refresh_every,
        "cold_refresh_every": KMeansParams.cold_refresh_every,
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
    for small, large in list(zip(cost, cost[1:])) + ([(cost[0], cost[-1])] if len(cost) > 2 else []):
        print(
            f"  ratio {large['users']:,} / {small['users']:,} users: worker "
            f"{large['worker_us_per_event'] / small['worker_us_per_event']:.2f}x, owner with cold "
            f"{large['owner_us_per_event_with_cold_share'] / small['owner_us_per_event_with_cold_share']:.2f}x"
        )
