"""Streaming k-means over user vectors: mini-batch updates with forgetting, periodic refreshes
on a reservoir of recent users, stable segment ids, and hysteresis.

- Seeding: k-means++ (scikit-learn, ``n_init`` restarts) on the first ``seed_users`` users.
- Between refreshes every updated user moves its centroid by a mini-batch step with a decayed
  count (Spark StreamingKMeans' forgetfulness): ``w = w * decay + 1; c += (x - c) / w`` with
  ``decay = 2 ** (-1 / half_life_updates)``, so old evidence fades and centroids follow drift.
- Every ``refresh_every`` updates (and at once when a centroid has lost all its users) the
  model re-runs k-means on the reservoir of the most recently updated users, warm-started from
  the current centroids and against fresh k-means++ restarts, and keeps the lowest inertia. New
  centroids are matched to the old ids by the Hungarian method on centroid distance, so users
  who did not change keep their id; an empty or dying centroid is thereby re-seeded where the
  data needs one. Reservoir users whose segment changes are returned for change events.
- Hysteresis: a user leaves its segment only for a centroid closer by more than ``margin``.

Every seed and refresh is recorded as a model event (kept, bounded, with the model).
"""

from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

if TYPE_CHECKING:
    from stream.config import Settings

MAX_EVENTS = 50


@dataclass(frozen=True, slots=True)
class Assignment:
    segment: int
    distance: float


def distances(centroids: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Euclidean distance from ``vector`` to every centroid."""
    diff = centroids - vector
    return np.sqrt(np.maximum(np.einsum("kd,kd->k", diff, diff), 0.0))


def nearest(centroids: np.ndarray, vector: np.ndarray, current: int | None = None, margin: float = 0.0) -> Assignment:
    """The closest centroid, except that ``current`` is kept unless another is closer by more
    than ``margin`` (hysteresis: borderline users do not flap)."""
    d = distances(centroids, vector)
    best = int(np.argmin(d))
    if current is not None and 0 <= current < len(d) and d[current] - d[best] <= margin:
        best = current
    return Assignment(best, float(d[best]))


def match_ids(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Permutation ``p`` such that ``new[p]`` lines up with ``old`` (min total distance)."""
    cost = np.linalg.norm(old[:, None, :] - new[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(old), dtype=int)
    order[rows] = cols
    return order


def inertia(centroids: np.ndarray, matrix: np.ndarray) -> float:
    """Sum of squared distances of each row to its nearest centroid."""
    d2 = ((matrix[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return float(d2.min(axis=1).sum())


def new_model(settings: Settings, dim: int) -> StreamingKMeans:
    """An unseeded model configured by ``settings`` (stream.config.Settings)."""
    return StreamingKMeans(
        k=settings.k,
        dim=dim,
        seed_users=settings.seed_users,
        reservoir_size=settings.reservoir_users,
        refresh_every=settings.refresh_every,
        half_life_updates=settings.model_half_life_updates,
        margin=settings.hysteresis,
    )


@dataclass
class StreamingKMeans:
    k: int
    dim: int
    seed_users: int
    reservoir_size: int = 5000
    refresh_every: int = 500
    half_life_updates: float = 2000.0
    margin: float = 0.02
    n_init: int = 10
    random_state: int = 0
    version: int = 0
    centroids: np.ndarray | None = None  # float64 [k, dim]; None until seeded
    weights: np.ndarray = field(init=False)  # decayed update counts: mini-batch learning rates
    sizes: np.ndarray = field(init=False)  # users currently assigned to each segment
    updates_since_refresh: int = 0
    reservoir: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    assigned: dict[str, int] = field(default_factory=dict)  # segment of each reservoir user
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.weights = np.zeros(self.k, dtype=np.float64)
        self.sizes = np.zeros(self.k, dtype=np.int64)
        self.decay = float(2.0 ** (-1.0 / self.half_life_updates))

    @property
    def seeded(self) -> bool:
        return self.centroids is not None

    def assign(self, vector: np.ndarray, current: int | None = None) -> Assignment:
        if self.centroids is None:
            raise RuntimeError("model not seeded yet")
        return nearest(self.centroids, vector, current, self.margin)

    def _remember(self, user_id: str, vector: np.ndarray) -> None:
        self.reservoir[user_id] = vector.astype(np.float32)
        self.reservoir.move_to_end(user_id)
        while len(self.reservoir) > self.reservoir_size:
            evicted, _ = self.reservoir.popitem(last=False)
            self.assigned.pop(evicted, None)

    def observe(
        self, user_id: str, old_segment: int | None, new_vector: np.ndarray
    ) -> Assignment | None:
        """A user's vector changed: assign it and move its centroid; None while unseeded."""
        self._remember(user_id, new_vector)
        if self.centroids is None:
            return None
        assignment = self.assign(new_vector, old_segment)
        seg = assignment.segment
        self.weights[seg] = self.weights[seg] * self.decay + 1.0
        self.centroids[seg] += (new_vector - self.centroids[seg]) / self.weights[seg]
        self._set_segment(user_id, old_segment, seg)
        self.updates_since_refresh += 1
        return assignment

    def _set_segment(self, user_id: str, old: int | None, new: int) -> None:
        if old != new:
            if old is not None and 0 <= old < self.k and self.sizes[old] > 0:
                self.sizes[old] -= 1
            self.sizes[new] += 1
        if user_id in self.reservoir:
            self.assigned[user_id] = new

    def ready_to_seed(self) -> bool:
        return self.centroids is None and len(self.reservoir) >= self.seed_users

    def needs_refresh(self) -> bool:
        """Every ``refresh_every`` updates; ten times sooner while a segment is empty."""
        if self.centroids is None or len(self.reservoir) < 2 * self.k:
            return False
        due = self.refresh_every // 10 if (self.sizes == 0).any() else self.refresh_every
        return self.updates_since_refresh >= due

    def _cluster_reservoir(self, warm_start: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        users = list(self.reservoir)
        matrix = np.stack([self.reservoir[u] for u in users]).astype(np.float64)
        best = KMeans(self.k, init="k-means++", n_init=self.n_init, random_state=self.random_state).fit(matrix)
        if warm_start is not None:
            warm = KMeans(self.k, init=warm_start, n_init=1).fit(matrix)
            if warm.inertia_ <= best.inertia_:
                best = warm
        return best.cluster_centers_.astype(np.float64), matrix

    def seed(self) -> dict[str, Assignment]:
        """k-means++ on the users seen so far; returns every one's segment."""
        self.centroids, _ = self._cluster_reservoir(None)
        self.weights = np.zeros(self.k, dtype=np.float64)
        result = {u: self.assign(v) for u, v in self.reservoir.items()}
        for user, a in result.items():
            self.weights[a.segment] += 1.0
            self._set_segment(user, None, a.segment)
        self._log("seed", users=len(result), sizes=self.sizes.tolist())
        return result

    def refresh(self) -> dict[str, Assignment]:
        """Re-cluster the reservoir, keep ids by matching; returns users whose segment changed."""
        assert self.centroids is not None
        old = self.centroids
        empty = [int(i) for i in np.flatnonzero(self.sizes == 0)]
        new, matrix = self._cluster_reservoir(old)
        new = new[match_ids(old, new)]
        before = inertia(old, matrix)
        self.centroids = new
        changed: dict[str, Assignment] = {}
        counts = np.zeros(self.k, dtype=np.float64)
        for user, vector in self.reservoir.items():
            current = self.assigned.get(user)
            a = self.assign(vector, current)
            closest = nearest(new, vector)
            if closest.segment in empty:  # no hysteresis towards a re-seeded centroid
                a = closest
            counts[a.segment] += 1.0
            if a.segment != current:
                changed[user] = a
                self._set_segment(user, current, a.segment)
        self.weights = np.maximum(self.weights, counts)
        self.updates_since_refresh = 0
        self._log(
            "refresh",
            reservoir=len(self.reservoir),
            inertia_before=round(before, 4),
            inertia_after=round(inertia(new, matrix), 4),
            moved_users=len(changed),
            reseeded_empty=empty,
            centroid_shift=[round(float(x), 4) for x in np.linalg.norm(new - old, axis=1)],
        )
        return changed

    def _log(self, kind: str, **detail: Any) -> None:
        self.events.append({"event": kind, "version": self.version, "ts": time.time(), **detail})
        del self.events[:-MAX_EVENTS]

    # Persistence: JSON, arrays as base64 little-endian. The reservoir is kept only until the
    # model is seeded (it is a sample that refills from live updates; publishing thousands of
    # vectors with every model version would not fit a Kafka message).
    def to_bytes(self) -> bytes:
        def enc(a: np.ndarray, dtype: str) -> str:
            return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()

        doc: dict[str, Any] = {
            "format": 2,
            "k": self.k,
            "dim": self.dim,
            "version": self.version,
            "centroids": None if self.centroids is None else enc(self.centroids, "<f8"),
            "weights": self.weights.tolist(),
            "sizes": self.sizes.tolist(),
            "updates_since_refresh": self.updates_since_refresh,
            "events": self.events,
            "reservoir": {} if self.seeded else {u: enc(v, "<f4") for u, v in self.reservoir.items()},
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def restore(self, raw: bytes) -> StreamingKMeans:
        """Load a published model into this (configured) one; the shapes must agree."""
        doc = json.loads(raw)
        if doc.get("format") != 2 or (doc["k"], doc["dim"]) != (self.k, self.dim):
            raise ValueError(
                f"published model has format {doc.get('format')}, k={doc.get('k')}, dim={doc.get('dim')}; "
                f"this worker is configured for format 2, k={self.k}, dim={self.dim}"
            )

        def dec(text: str, dtype: str) -> np.ndarray:
            return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()

        self.version = doc["version"]
        if doc["centroids"] is not None:
            self.centroids = dec(doc["centroids"], "<f8").reshape(self.k, self.dim)
        self.weights = np.asarray(doc["weights"], dtype=np.float64)
        self.sizes = np.asarray(doc["sizes"], dtype=np.int64)
        self.updates_since_refresh = doc["updates_since_refresh"]
        self.events = doc["events"]
        self.reservoir = OrderedDict((u, dec(v, "<f4")) for u, v in doc["reservoir"].items())
        return self
