"""Streaming k-means over user vectors with one writer: mini-batch updates with forgetting,
periodic refreshes on a reservoir of recent users, stable segment ids, and hysteresis.

Workers assign users with the model version they hold and send :class:`CentroidStats` (per
centroid sums and counts of the user vectors they assigned, segment moves, and the users'
vectors) to the model owner, which applies them in order (:meth:`StreamingKMeans.apply`):

- Seeding: k-means++ (scikit-learn, ``n_init`` restarts) once ``seed_users`` users are known.
- Mini-batch steps with a decayed count (Spark StreamingKMeans' forgetfulness): ``n`` vectors
  with sum ``s`` give ``w' = w * decay^n + n; c' = (c * w * decay^n + s) / w'`` with
  ``decay = 2 ** (-1 / half_life_updates)``, so old evidence fades and centroids follow drift.
- Every ``refresh_every`` updates (ten times sooner while a segment has no users) the owner
  re-runs k-means on the reservoir of the most recently updated users, warm-started from the
  current centroids. Every ``cold_refresh_every``-th refresh, and whenever a segment is empty,
  fresh k-means++ restarts compete with the warm start and the lowest inertia wins: they are
  ten fits, so doing them on every refresh made the owner's cost grow with the reservoir. New
  centroids are matched to the old ids by the Hungarian method, so users who did not change
  keep their id; an empty centroid is thereby re-seeded where the data needs one.
- Hysteresis: a user leaves its segment only for a centroid closer by more than ``margin``
  (not towards a centroid re-seeded by the latest refresh).

Workers re-assign their users when a new version arrives (sweeps, stream/pipeline.py). Every
seed, refresh and rebuild is recorded as a model event (kept, bounded, with the model).
"""

from __future__ import annotations

import base64
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


def squared_distances(centroids: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[rows, k] squared Euclidean distances, without a [rows, k, dim] temporary."""
    d2 = (matrix**2).sum(axis=1)[:, None] - 2.0 * matrix @ centroids.T + (centroids**2).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0)


def inertia(centroids: np.ndarray, matrix: np.ndarray) -> float:
    """Sum of squared distances of each row to its nearest centroid."""
    return float(squared_distances(centroids, matrix).min(axis=1).sum())


def nearest_all(centroids: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of every row."""
    return squared_distances(centroids, matrix).argmin(axis=1)


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


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()


def _unb64(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


@dataclass
class CentroidStats:
    """What one worker batch tells the model owner.

    ``sums``/``counts``: the vectors of the users assigned to each centroid (the mini-batch
    step); ``size_delta``: users who entered (+1) or left (-1) each segment; ``users``: each
    updated user's segment (-1: none) and vector, for the owner's reservoir (float16 on the
    wire: they only seed and refresh). ``rebuild`` asks the owner for :meth:`StreamingKMeans.rebuild`.
    """

    k: int
    dim: int
    version: int = 0  # the model version the worker assigned with
    sums: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)
    size_delta: np.ndarray = field(init=False)
    users: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)
    rebuild: str | None = None  # None, "canonical" or "matched"

    def __post_init__(self) -> None:
        self.sums = np.zeros((self.k, self.dim), dtype=np.float64)
        self.counts = np.zeros(self.k, dtype=np.int64)
        self.size_delta = np.zeros(self.k, dtype=np.int64)

    def __bool__(self) -> bool:
        return bool(self.users) or bool(self.size_delta.any()) or self.rebuild is not None

    def observe(self, user_id: str, vector: np.ndarray, segment: int | None) -> None:
        """A user's vector changed and the worker assigned it to ``segment`` (None: unseeded)."""
        self.users[user_id] = (-1 if segment is None else segment, vector)
        if segment is not None:
            self.sums[segment] += vector
            self.counts[segment] += 1

    def move(self, old: int | None, new: int | None) -> None:
        if old == new:
            return
        if old is not None and 0 <= old < self.k:
            self.size_delta[old] -= 1
        if new is not None:
            self.size_delta[new] += 1

    def to_doc(self) -> dict[str, Any]:
        users = list(self.users)
        return {
            "k": self.k,
            "dim": self.dim,
            "version": self.version,
            "sums": _b64(self.sums, "<f8"),
            "counts": self.counts.tolist(),
            "size_delta": self.size_delta.tolist(),
            "users": users,
            "segments": [self.users[u][0] for u in users],
            "vectors": _b64(np.array([self.users[u][1] for u in users]).reshape(-1, self.dim), "<f2"),
            "rebuild": self.rebuild,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CentroidStats:
        stats = cls(int(doc["k"]), int(doc["dim"]), int(doc["version"]), rebuild=doc["rebuild"])
        stats.sums = _unb64(doc["sums"], "<f8").reshape(stats.k, stats.dim)
        stats.counts = np.asarray(doc["counts"], dtype=np.int64)
        stats.size_delta = np.asarray(doc["size_delta"], dtype=np.int64)
        vectors = _unb64(doc["vectors"], "<f2").astype(np.float32).reshape(-1, stats.dim)
        stats.users = {u: (int(s), v) for u, s, v in zip(doc["users"], doc["segments"], vectors)}
        return stats


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
    cold_refresh_every: int = 10
    random_state: int = 0
    version: int = 0
    centroids: np.ndarray | None = None  # float64 [k, dim]; None until seeded
    weights: np.ndarray = field(init=False)  # decayed update counts: mini-batch learning rates
    sizes: np.ndarray = field(init=False)  # users currently assigned to each segment
    reseeded: list[int] = field(default_factory=list)  # re-seeded by the latest refresh: no hysteresis
    rebuilt_version: int = 0  # version of the latest rebuild (0: none)
    updates_since_refresh: int = 0
    refreshes: int = 0  # by this owner since it loaded the model: every cold_refresh_every-th is cold
    updates_offset: int = -1  # the last offset of the updates topic applied (owner exactly-once)
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

    def assign(self, vector: np.ndarray, current: int | None = None, hysteresis: bool = True) -> Assignment:
        """The user's segment under this version: the nearest centroid, with hysteresis unless
        the nearest was just re-seeded (or ``hysteresis`` is off)."""
        if self.centroids is None:
            raise RuntimeError("model not seeded yet")
        d = distances(self.centroids, vector)
        best = int(np.argmin(d))
        if (
            hysteresis
            and best not in self.reseeded
            and current is not None
            and 0 <= current < len(d)
            and d[current] - d[best] <= self.margin
        ):
            best = current
        return Assignment(best, float(d[best]))

    def assign_all(
        self, matrix: np.ndarray, current: np.ndarray, hysteresis: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`assign` for every row of ``matrix`` at once (``current`` -1: none): the
        segments and the distances to them."""
        if self.centroids is None:
            raise RuntimeError("model not seeded yet")
        d = np.sqrt(squared_distances(self.centroids, np.asarray(matrix, dtype=np.float64)))
        rows = np.arange(len(d))
        best = d.argmin(axis=1)
        has_current = (current >= 0) & (current < self.k)
        current_distance = d[rows, np.where(has_current, current, 0)]
        keep = hysteresis & has_current & ~np.isin(best, self.reseeded)
        keep &= current_distance - d[rows, best] <= self.margin
        segments = np.where(keep, current, best)
        return segments, d[rows, segments]

    def stats(self) -> CentroidStats:
        """Empty statistics for a worker batch assigned with this version."""
        return CentroidStats(self.k, self.dim, self.version)

    # --- the owner's side --------------------------------------------------------------------

    def apply(self, stats: CentroidStats) -> bool:
        """Fold one worker batch in (the mini-batch step), then seed, refresh or rebuild when
        due. True when the centroids changed, which makes a new version; segment moves alone
        (a sweep's) only update the sizes."""
        if (stats.k, stats.dim) != (self.k, self.dim):
            raise ValueError(f"statistics for k={stats.k}, dim={stats.dim}; the model has k={self.k}, dim={self.dim}")
        for user_id, (segment, vector) in stats.users.items():
            self._remember(user_id, vector, None if segment < 0 else segment)
        self.sizes = np.maximum(self.sizes + stats.size_delta, 0)
        changed = False
        if self.centroids is not None:
            sums, counts = self._with_unassigned(stats)
            changed = bool(counts.any())
            for seg in np.flatnonzero(counts):
                n = int(counts[seg])
                kept = self.weights[seg] * self.decay**n
                self.weights[seg] = kept + n
                self.centroids[seg] = (self.centroids[seg] * kept + sums[seg]) / self.weights[seg]
            self.updates_since_refresh += int(counts.sum())
        rebuild = stats.rebuild is not None and len(self.reservoir) >= self.k
        if not (changed or rebuild or self.ready_to_seed() or self.needs_refresh()):
            return False
        self.version += 1
        if rebuild:
            self.rebuild(canonical=stats.rebuild == "canonical")
        elif self.ready_to_seed():
            self.seed()
        elif self.needs_refresh():
            self.refresh()
        return True

    def _with_unassigned(self, stats: CentroidStats) -> tuple[np.ndarray, np.ndarray]:
        """The batch's sums and counts, plus the users its worker could not assign (its copy
        was not seeded yet, as while a backlog is worked off) at their nearest centroid: their
        evidence still moves the model."""
        unassigned = [vector for segment, vector in stats.users.values() if segment < 0]
        if not unassigned:
            return stats.sums, stats.counts
        assert self.centroids is not None
        matrix = np.stack(unassigned).astype(np.float64)
        nearest_of = nearest_all(self.centroids, matrix)
        sums = stats.sums.copy()
        np.add.at(sums, nearest_of, matrix)
        return sums, stats.counts + np.bincount(nearest_of, minlength=self.k)

    def _remember(self, user_id: str, vector: np.ndarray, segment: int | None) -> None:
        self.reservoir[user_id] = vector.astype(np.float32)
        self.reservoir.move_to_end(user_id)
        if segment is None:
            self.assigned.pop(user_id, None)
        else:
            self.assigned[user_id] = segment
        while len(self.reservoir) > self.reservoir_size:
            evicted, _ = self.reservoir.popitem(last=False)
            self.assigned.pop(evicted, None)

    def ready_to_seed(self) -> bool:
        return self.centroids is None and len(self.reservoir) >= self.seed_users

    def needs_refresh(self) -> bool:
        """Every ``refresh_every`` updates; ten times sooner while a segment is empty."""
        if self.centroids is None or len(self.reservoir) < 2 * self.k:
            return False
        due = self.refresh_every // 10 if self.empty_segments() else self.refresh_every
        return self.updates_since_refresh >= due

    def empty_segments(self) -> list[int]:
        """Segments no user is assigned to. None while no user is assigned at all: then the
        workers have not assigned anyone yet (their copies were not seeded while they worked
        off a backlog), and treating every segment as empty made each refresh a cold one."""
        if not self.sizes.any():
            return []
        return [int(i) for i in np.flatnonzero(self.sizes == 0)]

    def _reservoir_matrix(self) -> np.ndarray:
        """The reservoir's vectors in user-id order, so a re-clustering does not depend on the
        order users were updated in."""
        return np.stack([self.reservoir[u] for u in sorted(self.reservoir)]).astype(np.float64)

    def _cluster(self, matrix: np.ndarray, warm_start: np.ndarray | None, cold: bool = True) -> np.ndarray:
        """k-means on ``matrix``: from ``warm_start``, from ``n_init`` k-means++ restarts
        (``cold``), or both, keeping the lowest inertia."""
        fits = []
        if cold or warm_start is None:
            fits.append(KMeans(self.k, init="k-means++", n_init=self.n_init, random_state=self.random_state).fit(matrix))
        if warm_start is not None:
            fits.append(KMeans(self.k, init=warm_start, n_init=1).fit(matrix))
        return min(fits, key=lambda fit: fit.inertia_).cluster_centers_.astype(np.float64)

    def seed(self) -> None:
        """k-means++ on the users seen so far; workers' sweeps then assign everyone."""
        matrix = self._reservoir_matrix()
        self.centroids = self._cluster(matrix, None)
        self.weights = np.bincount(nearest_all(self.centroids, matrix), minlength=self.k).astype(np.float64)
        self.updates_since_refresh = 0
        self._log("seed", users=len(matrix))

    def refresh(self) -> None:
        """Re-cluster the reservoir and keep ids by matching."""
        assert self.centroids is not None
        old = self.centroids
        empty = self.empty_segments()
        matrix = self._reservoir_matrix()
        self.refreshes += 1
        cold = bool(empty) or self.refreshes % self.cold_refresh_every == 0
        new = self._cluster(matrix, old, cold)
        new = new[match_ids(old, new)]
        self._replace(old, new, matrix, "refresh", reseeded=empty, cold=cold)

    def rebuild(self, canonical: bool) -> None:
        """A cold, deterministic re-clustering of the reservoir (a replay's final step): only
        the reservoir's vectors decide it. ``canonical`` numbers segments by size (largest
        first) instead of matching the current ids, so that two replays give the same ids."""
        matrix = self._reservoir_matrix()
        new = self._cluster(matrix, None)
        if canonical or self.centroids is None:
            sizes = np.bincount(nearest_all(new, matrix), minlength=self.k)
            new = new[np.lexsort((np.arange(self.k), -sizes))]
            old = self.centroids if self.centroids is not None else new
        else:
            old = self.centroids
            new = new[match_ids(old, new)]
        self.rebuilt_version = self.version
        self._replace(old, new, matrix, "rebuild", reseeded=[])

    def _replace(
        self, old: np.ndarray, new: np.ndarray, matrix: np.ndarray, kind: str, reseeded: list[int], **detail: Any
    ) -> None:
        before = inertia(old, matrix)
        self.centroids = new
        self.reseeded = reseeded
        counts = np.bincount(nearest_all(new, matrix), minlength=self.k).astype(np.float64)
        users = list(self.assigned)
        current = np.fromiter(self.assigned.values(), dtype=np.int64, count=len(users))
        vectors = np.stack([self.reservoir[u] for u in users]) if users else np.zeros((0, self.dim))
        moved = int((self.assign_all(vectors, current)[0] != current).sum())
        self.weights = np.maximum(self.weights, counts)
        self.updates_since_refresh = 0
        self._log(
            kind,
            reservoir=len(matrix),
            inertia_before=round(before, 4),
            inertia_after=round(inertia(new, matrix), 4),
            moved_users=moved,
            reseeded_empty=reseeded,
            centroid_shift=[round(float(x), 4) for x in np.linalg.norm(new - old, axis=1)],
            **detail,
        )

    def _log(self, kind: str, **detail: Any) -> None:
        self.events.append({"event": kind, "version": self.version, "ts": time.time(), **detail})
        del self.events[:-MAX_EVENTS]

    # --- the workers' side -------------------------------------------------------------------

    def adopt(self, published: StreamingKMeans) -> None:
        """Take a newer published version (a worker's copy: it assigns, the owner writes)."""
        self.version = published.version
        self.centroids = published.centroids
        self.weights = published.weights
        self.sizes = published.sizes
        self.reseeded = published.reseeded
        self.rebuilt_version = published.rebuilt_version
        self.updates_since_refresh = published.updates_since_refresh
        self.updates_offset = published.updates_offset
        self.events = published.events

    # Persistence: JSON, arrays as base64 little-endian. The reservoir (float16: it only feeds
    # re-clusterings) is kept only until the model is seeded: it is a sample that refills from
    # live updates, and thousands of vectors with every version would not fit a Kafka message.
    def to_doc(self) -> dict[str, Any]:
        users = [] if self.seeded else list(self.reservoir)
        return {
            "format": 3,
            "k": self.k,
            "dim": self.dim,
            "version": self.version,
            "centroids": None if self.centroids is None else _b64(self.centroids, "<f8"),
            "weights": self.weights.tolist(),
            "sizes": self.sizes.tolist(),
            "reseeded": self.reseeded,
            "rebuilt_version": self.rebuilt_version,
            "updates_since_refresh": self.updates_since_refresh,
            "updates_offset": self.updates_offset,
            "events": self.events,
            "reservoir_users": users,
            "reservoir_segments": [self.assigned.get(u, -1) for u in users],
            "reservoir": _b64(np.array([self.reservoir[u] for u in users]).reshape(-1, self.dim), "<f2"),
        }

    def restore(self, doc: dict[str, Any]) -> StreamingKMeans:
        """Load a published model into this (configured) one; the shapes must agree."""
        if doc.get("format") != 3 or (doc["k"], doc["dim"]) != (self.k, self.dim):
            raise ValueError(
                f"published model has format {doc.get('format')}, k={doc.get('k')}, dim={doc.get('dim')}; "
                f"this worker is configured for format 3, k={self.k}, dim={self.dim}"
            )
        self.version = doc["version"]
        if doc["centroids"] is not None:
            self.centroids = _unb64(doc["centroids"], "<f8").reshape(self.k, self.dim)
        self.weights = np.asarray(doc["weights"], dtype=np.float64)
        self.sizes = np.asarray(doc["sizes"], dtype=np.int64)
        self.reseeded = list(doc["reseeded"])
        self.rebuilt_version = doc["rebuilt_version"]
        self.updates_since_refresh = doc["updates_since_refresh"]
        self.updates_offset = doc["updates_offset"]
        self.events = doc["events"]
        vectors = _unb64(doc["reservoir"], "<f2").astype(np.float32).reshape(-1, self.dim)
        self.reservoir = OrderedDict(zip(doc["reservoir_users"], vectors))
        self.assigned = {u: s for u, s in zip(doc["reservoir_users"], doc["reservoir_segments"]) if s >= 0}
        return self

