"""Streaming k-means over user vectors with one writer: mini-batch updates with forgetting,
periodic refreshes on a reservoir of recent users, stable segment ids, and hysteresis.

The contract, as River's clusterers and scikit-learn's ``MiniBatchKMeans``: hyperparameters in
:class:`KMeansParams`, stored verbatim; fitted state on :class:`StreamingKMeans`; two verbs,
:meth:`StreamingKMeans.learn` (the owner folds in one worker batch's :class:`CentroidStats`) and
:meth:`StreamingKMeans.predict` (each user's segment under this version, with hysteresis).

- Seeding: k-means++ (scikit-learn, ``n_init`` restarts) once ``seed_users`` users are known.
- Mini-batch steps with a decayed count (Spark StreamingKMeans' forgetfulness, the pure kernel
  :func:`mini_batch_step`): ``n`` vectors with sum ``s`` give ``w' = w * decay^n + n;
  c' = (c * w * decay^n + s) / w'`` with ``decay = 2 ** (-1 / half_life_updates)``, so old
  evidence fades and centroids follow drift.
- Every ``refresh_every`` updates (ten times sooner while a segment has no users) the owner
  re-runs k-means on the reservoir of the most recently updated users, warm-started from the
  current centroids. Fresh k-means++ restarts compete with the warm start, and the lowest
  inertia wins, on every ``cold_refresh_every``-th refresh, whenever a segment is empty, and
  whenever the users known have doubled since the last cold fit (a seed on few users can sit
  in a poor optimum that warm starts never leave); they are ten fits, so doing them on every
  refresh made the owner's cost grow with the reservoir. New centroids are matched to the old
  ids by the Hungarian method, so users who did not change keep their id; an empty centroid is
  thereby re-seeded where the data needs one.
- Hysteresis: a user leaves its segment only for a centroid closer by more than ``margin`` of
  that centroid's distance (relative, as encoders and data differ in how close they put users
  to their centroids), and not towards a centroid re-seeded by the latest refresh.

Every seed, refresh and rebuild is recorded as a model event in :attr:`StreamingKMeans.history`
(bounded, published with the model).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from models.arrays import decode_array, encode_array
from models.centroid_stats import CentroidStats

FORMAT = 3
MAX_HISTORY = 50


@dataclass(frozen=True)
class KMeansParams:
    """Hyperparameters, as configured (see stream/config.py for their meaning)."""

    k: int
    seed_users: int
    reservoir_size: int = 5000
    refresh_every: int = 500
    half_life_updates: float = 2000.0
    margin: float = 0.05  # relative: see predict
    n_init: int = 10
    cold_refresh_every: int = 10
    random_state: int = 0

    @property
    def decay(self) -> float:
        """Weight an update's evidence keeps per later update."""
        return float(2.0 ** (-1.0 / self.half_life_updates))


def squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[rows, k] squared Euclidean distances, without a [rows, k, dim] temporary."""
    x = np.asarray(x, dtype=np.float64)
    centroids = np.asarray(centroids, dtype=np.float64)
    d2 = (x**2).sum(axis=1)[:, None] - 2.0 * x @ centroids.T + (centroids**2).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0)


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of every row of ``x``."""
    return squared_distances(x, centroids).argmin(axis=1)


def canonical_order(labels: np.ndarray, k: int) -> np.ndarray:
    """The segments of ``labels`` (rows in user-id order) largest first; equal sizes ordered by
    their first row, so that the order depends on the partition only, not on which centroid
    k-means happened to find first."""
    sizes = np.bincount(labels, minlength=k)
    first_row = np.full(k, len(labels))
    np.minimum.at(first_row, labels, np.arange(len(labels)))
    return np.lexsort((np.arange(k), first_row, -sizes))


def inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    """Sum over the rows of ``x`` of the squared distance to the nearest centroid."""
    if len(x) == 0:
        return 0.0
    return float(squared_distances(x, centroids).min(axis=1).sum())


def match_ids(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Permutation ``p`` such that ``new[p]`` lines up with ``old`` (min total distance)."""
    cost = np.linalg.norm(old[:, None, :] - new[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(old), dtype=int)
    order[rows] = cols
    return order


def mini_batch_step(
    centroids: np.ndarray, weights: np.ndarray, sums: np.ndarray, counts: np.ndarray, decay: float
) -> None:
    """Move each centroid with ``counts[i] > 0`` new vectors (summing to ``sums[i]``) towards
    them, in place: its past weight decays by ``decay`` per new vector, then it is the weighted
    mean of the past and the new."""
    for seg in np.flatnonzero(counts):
        n = int(counts[seg])
        kept = weights[seg] * decay**n
        weights[seg] = kept + n
        centroids[seg] = (centroids[seg] * kept + sums[seg]) / weights[seg]


@dataclass(eq=False)
class StreamingKMeans:
    """The fitted state of the segment model; one owner learns, every worker predicts."""

    params: KMeansParams
    dim: int
    version: int = 0
    centroids: np.ndarray | None = None  # float64 [k, dim]; None until seeded
    weights: np.ndarray = field(init=False)  # decayed update counts: mini-batch learning rates
    sizes: np.ndarray = field(init=False)  # users currently assigned to each segment: the census' sum
    census: dict[int, np.ndarray] = field(init=False)  # partition -> its latest users per segment
    reseeded: list[int] = field(default_factory=list)  # re-seeded by the latest refresh: no hysteresis
    rebuilt_version: int = 0  # version of the latest rebuild (0: none)
    updates_since_refresh: int = 0
    refreshes: int = 0  # by this owner since it loaded the model: every cold_refresh_every-th is cold
    seeded_users: int = 0  # users the latest cold fit (seed or cold refresh) saw: cold again once they double
    updates_offset: int = -1  # the last offset of the updates topic applied (owner exactly-once)
    reservoir: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    assigned: dict[str, int] = field(default_factory=dict)  # segment of each reservoir user
    history: list[dict[str, Any]] = field(default_factory=list)  # model events: seed, refresh, rebuild

    def __post_init__(self) -> None:
        self.weights = np.zeros(self.k, dtype=np.float64)
        self.sizes = np.zeros(self.k, dtype=np.int64)
        self.census = {}

    @property
    def k(self) -> int:
        return self.params.k

    @property
    def seeded(self) -> bool:
        return self.centroids is not None

    def new_stats(self) -> CentroidStats:
        """Empty statistics for a worker batch assigned with this version."""
        return CentroidStats(self.k, self.dim, self.version)

    # --- predict: every worker, with its copy ---------------------------------------------------

    def predict(
        self, x: np.ndarray, current: np.ndarray | None = None, hysteresis: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's segment under this version and its distance to it: the nearest centroid,
        except that a row keeps its ``current`` segment (-1: none) unless the nearest centroid is
        closer by more than ``margin`` times its own distance, or it was just re-seeded, or
        ``hysteresis`` is off."""
        if self.centroids is None:
            raise RuntimeError("model not seeded yet")
        d = np.sqrt(squared_distances(x, self.centroids))
        rows = np.arange(len(d))
        best = d.argmin(axis=1)
        if current is None:
            return best, d[rows, best]
        has_current = (current >= 0) & (current < self.k)
        current_distance = d[rows, np.where(has_current, current, 0)]
        keep = hysteresis & has_current & ~np.isin(best, self.reseeded)
        keep &= current_distance - d[rows, best] <= self.params.margin * d[rows, best]
        segments = np.where(keep, current, best)
        return segments, d[rows, segments]

    # --- learn: the owner -------------------------------------------------------------------

    def learn(self, stats: CentroidStats) -> bool:
        """Fold one worker batch in (the mini-batch step), then seed, refresh or rebuild when
        due. True when the centroids changed, which makes a new version; segment moves alone
        (a sweep's) and censuses only update the sizes."""
        if (stats.k, stats.dim) != (self.k, self.dim):
            raise ValueError(f"statistics for k={stats.k}, dim={stats.dim}; the model has k={self.k}, dim={self.dim}")
        for user_id, (segment, vector) in stats.users.items():
            self._remember(user_id, vector, None if segment < 0 else segment)
        for user_id in stats.forget:
            self.reservoir.pop(user_id, None)
            self.assigned.pop(user_id, None)
        if stats.census:
            self.census.update(stats.census)
            self.sizes = np.sum(list(self.census.values()), axis=0, dtype=np.int64)
        changed = False
        if self.centroids is not None:
            sums, counts = self._with_unassigned(stats)
            changed = bool(counts.any())
            mini_batch_step(self.centroids, self.weights, sums, counts, self.params.decay)
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
        nearest_of = nearest(matrix, self.centroids)
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
        while len(self.reservoir) > self.params.reservoir_size:
            evicted, _ = self.reservoir.popitem(last=False)
            self.assigned.pop(evicted, None)

    def ready_to_seed(self) -> bool:
        return self.centroids is None and len(self.reservoir) >= self.params.seed_users

    def seed_early(self) -> bool:
        """Seed with the users known so far, fewer than ``seed_users`` but at least k (a small
        deployment whose input went quiet); True when it did. Refreshes follow as users double."""
        if self.centroids is not None or len(self.reservoir) < self.k:
            return False
        self.version += 1
        self.seed()
        return True

    def refresh_when_quiet(self) -> bool:
        """The input went quiet: refresh if a tenth of ``refresh_every`` updates came since the
        last refresh, or any and a centroid is dead (nearest to no reservoir user); True when it
        did. Else a backlog worked off, then silence, leaves the centroids where the mini-batch
        steps left them and a dead segment empty: the updates that make a refresh due are gone."""
        if self.centroids is None or self.updates_since_refresh == 0 or len(self.reservoir) < 2 * self.k:
            return False
        if self.updates_since_refresh < self.params.refresh_every // 10 and not self.empty_segments():
            return False
        self.version += 1
        self.refresh()
        return True

    def needs_refresh(self) -> bool:
        """Every ``refresh_every`` updates; ten times sooner while a segment is empty; and after
        an early seed, whenever the users known have doubled, until ``seed_users``."""
        if self.centroids is None or len(self.reservoir) < 2 * self.k:
            return False
        if 0 < self.seeded_users < self.params.seed_users and len(self.reservoir) >= 2 * self.seeded_users:
            return True
        every = self.params.refresh_every
        if self.updates_since_refresh >= every:
            return True
        return self.updates_since_refresh >= every // 10 and bool(self.empty_segments())

    def empty_segments(self) -> list[int]:
        """Segments that are the nearest centroid of no user in the reservoir: dead centroids.

        Not the census: the workers' sweeps reach their users a share per version, so right
        after a new version a segment can count no users while the reservoir already has
        users nearest to it; taking that for death re-seeded live segments, over and over."""
        if self.centroids is None or not self.reservoir:
            return []
        counts = np.bincount(nearest(np.stack(list(self.reservoir.values())), self.centroids), minlength=self.k)
        return [int(i) for i in np.flatnonzero(counts == 0)]

    def _reservoir_matrix(self) -> np.ndarray:
        """The reservoir's vectors in user-id order, so a re-clustering does not depend on the
        order users were updated in."""
        return np.stack([self.reservoir[u] for u in sorted(self.reservoir)]).astype(np.float64)

    def _cluster(self, matrix: np.ndarray, warm_start: np.ndarray | None, cold: bool = True) -> np.ndarray:
        """k-means on ``matrix``: from ``warm_start``, from ``n_init`` k-means++ restarts
        (``cold``), or both, keeping the lowest inertia."""
        p = self.params
        fits = []
        if cold or warm_start is None:
            fits.append(KMeans(p.k, init="k-means++", n_init=p.n_init, random_state=p.random_state).fit(matrix))
        if warm_start is not None:
            fits.append(KMeans(p.k, init=warm_start, n_init=1).fit(matrix))
        return min(fits, key=lambda fit: fit.inertia_).cluster_centers_.astype(np.float64)

    def seed(self) -> None:
        """k-means++ on the users seen so far; workers' sweeps then assign everyone."""
        matrix = self._reservoir_matrix()
        self.centroids = self._cluster(matrix, None)
        self.weights = np.bincount(nearest(matrix, self.centroids), minlength=self.k).astype(np.float64)
        self.updates_since_refresh = 0
        self.seeded_users = len(matrix)
        self._record("seed", users=len(matrix))

    def refresh(self) -> None:
        """Re-cluster the reservoir and keep ids by matching."""
        assert self.centroids is not None
        old = self.centroids
        empty = self.empty_segments()
        matrix = self._reservoir_matrix()
        self.refreshes += 1
        cold = self._cold_reason(empty, len(matrix))
        new = self._cluster(matrix, old, cold is not None)
        new = new[match_ids(old, new)]
        if cold is not None:
            self.seeded_users = max(self.seeded_users, len(matrix))
        self._replace(old, new, matrix, "refresh", reseeded=empty, cold=cold is not None, cold_because=cold)

    def _cold_reason(self, empty: list[int], users: int) -> str | None:
        """Why this refresh also tries fresh k-means++ restarts, or None for a warm one."""
        if empty:
            return "empty segments"
        if 0 < 2 * self.seeded_users <= users:
            return "users doubled since the last cold fit"
        if self.refreshes % self.params.cold_refresh_every == 0:
            return "every cold_refresh_every-th refresh"
        return None

    def rebuild(self, canonical: bool) -> None:
        """A cold, deterministic re-clustering of the reservoir (a replay's final step): only
        the reservoir's vectors decide it. ``canonical`` numbers segments by size (largest
        first, equal sizes by their first user id) instead of matching the current ids, so
        that two replays give the same ids."""
        matrix = self._reservoir_matrix()
        new = self._cluster(matrix, None)
        if canonical or self.centroids is None:
            new = new[canonical_order(nearest(matrix, new), self.k)]
            old = self.centroids if self.centroids is not None else new
        else:
            old = self.centroids
            new = new[match_ids(old, new)]
        self.rebuilt_version = self.version
        self.seeded_users = max(self.seeded_users, len(matrix))
        self._replace(old, new, matrix, "rebuild", reseeded=[])

    def _replace(
        self, old: np.ndarray, new: np.ndarray, matrix: np.ndarray, kind: str, reseeded: list[int], **detail: Any
    ) -> None:
        before = inertia(matrix, old)
        users = list(self.assigned)
        current = np.fromiter(self.assigned.values(), dtype=np.int64, count=len(users))
        vectors = np.stack([self.reservoir[u] for u in users]) if users else np.zeros((0, self.dim))
        # moved by this refresh: against what the old centroids give (a stale assignment moves anyway)
        self.centroids = old
        held = self.predict(vectors, current)[0]
        self.centroids = new
        self.reseeded = reseeded
        counts = np.bincount(nearest(matrix, new), minlength=self.k).astype(np.float64)
        moved = int((self.predict(vectors, current)[0] != held).sum())
        self.weights = np.maximum(self.weights, counts)
        self.updates_since_refresh = 0
        self._record(
            kind,
            reservoir=len(matrix),
            inertia_before=round(before, 4),
            inertia_after=round(inertia(matrix, new), 4),
            moved_users=moved,
            reseeded_empty=reseeded,
            centroid_shift=[round(float(x), 4) for x in np.linalg.norm(new - old, axis=1)],
            **detail,
        )

    def _record(self, kind: str, **detail: Any) -> None:
        self.history.append({"event": kind, "version": self.version, "ts": time.time(), **detail})
        del self.history[:-MAX_HISTORY]

    # --- a worker's copy --------------------------------------------------------------------

    def adopt(self, published: StreamingKMeans) -> None:
        """Take a newer published version (a worker's copy: it predicts, the owner learns)."""
        self.version = published.version
        self.centroids = published.centroids
        self.weights = published.weights
        self.sizes = published.sizes
        self.census = published.census
        self.reseeded = published.reseeded
        self.rebuilt_version = published.rebuilt_version
        self.updates_since_refresh = published.updates_since_refresh
        self.updates_offset = published.updates_offset
        self.history = published.history
        self.reservoir = published.reservoir  # published only while unseeded: the users waiting

    # Persistence: JSON, arrays as base64 little-endian. The reservoir (float16: it only feeds
    # re-clusterings) is kept only until the model is seeded: it is a sample that refills from
    # live updates, and thousands of vectors with every version would not fit a Kafka message.
    def to_doc(self) -> dict[str, Any]:
        users = [] if self.seeded else list(self.reservoir)
        return {
            "format": FORMAT,
            "k": self.k,
            "dim": self.dim,
            "version": self.version,
            "centroids": None if self.centroids is None else encode_array(self.centroids, "<f8"),
            "weights": self.weights.tolist(),
            "sizes": self.sizes.tolist(),
            "census": {str(p): c.tolist() for p, c in self.census.items()},
            "reseeded": self.reseeded,
            "rebuilt_version": self.rebuilt_version,
            "updates_since_refresh": self.updates_since_refresh,
            "updates_offset": self.updates_offset,
            "seeded_users": self.seeded_users,
            "events": self.history,
            "reservoir_users": users,
            "reservoir_segments": [self.assigned.get(u, -1) for u in users],
            "reservoir": encode_array(np.array([self.reservoir[u] for u in users]).reshape(-1, self.dim), "<f2"),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], params: KMeansParams, dim: int) -> StreamingKMeans:
        """A published model, configured by ``params``; its k and dim must be these."""
        if doc.get("format") != FORMAT or (doc["k"], doc["dim"]) != (params.k, dim):
            raise ValueError(
                f"published model has format {doc.get('format')}, k={doc.get('k')}, dim={doc.get('dim')}; "
                f"this worker is configured for format {FORMAT}, k={params.k}, dim={dim}"
            )
        model = cls(params, dim, version=doc["version"])
        if doc["centroids"] is not None:
            model.centroids = decode_array(doc["centroids"], "<f8").reshape(model.k, dim)
        model.weights = np.asarray(doc["weights"], dtype=np.float64)
        model.sizes = np.asarray(doc["sizes"], dtype=np.int64)
        model.census = {int(p): np.asarray(c, dtype=np.int64) for p, c in doc.get("census", {}).items()}
        model.reseeded = list(doc["reseeded"])
        model.rebuilt_version = doc["rebuilt_version"]
        model.updates_since_refresh = doc["updates_since_refresh"]
        model.updates_offset = doc["updates_offset"]
        model.seeded_users = doc.get("seeded_users", 0)
        model.history = doc["events"]
        vectors = decode_array(doc["reservoir"], "<f2").astype(np.float32).reshape(-1, dim)
        model.reservoir = OrderedDict(zip(doc["reservoir_users"], vectors))
        model.assigned = {u: s for u, s in zip(doc["reservoir_users"], doc["reservoir_segments"]) if s >= 0}
        return model
