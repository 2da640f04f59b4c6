"""What a worker tells the model owner about one batch: the input of :meth:`StreamingKMeans.learn`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.arrays import decode_array, encode_array


@dataclass
class CentroidStats:
    """One worker batch, assigned with model ``version``.

    ``sums``/``counts``: the vectors of the users assigned to each centroid (the mini-batch
    step); ``census``: users per segment of each partition the worker counts (absolute counts,
    so a lost or repeated update does not make the sizes drift); ``users``: each
    updated user's segment (-1: none) and vector, for the owner's reservoir (float16 on the
    wire: they only seed and refresh). ``rebuild`` asks the owner for a deterministic rebuild
    ("canonical" ids numbered by size, or "matched" to the current ones). ``forget``: users
    erased from the worker, whose vectors the owner drops.
    """

    k: int
    dim: int
    version: int = 0
    sums: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)
    census: dict[int, np.ndarray] = field(default_factory=dict)
    users: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)
    rebuild: str | None = None
    forget: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sums = np.zeros((self.k, self.dim), dtype=np.float64)
        self.counts = np.zeros(self.k, dtype=np.int64)

    def __bool__(self) -> bool:
        return bool(self.users) or bool(self.census) or self.rebuild is not None or bool(self.forget)

    def observe(self, user_id: str, vector: np.ndarray, segment: int | None) -> None:
        """A user's vector changed and the worker assigned it to ``segment`` (None: unseeded)."""
        self.users[user_id] = (-1 if segment is None else segment, vector)
        if segment is not None:
            self.sums[segment] += vector
            self.counts[segment] += 1

    def problem(self) -> str:
        """Why the owner must not learn these statistics ("" when it may): a non-finite sum or
        vector, a zero vector, a segment out of range."""
        if not np.isfinite(self.sums).all():
            return "centroid sums are not finite"
        if (self.counts < 0).any() or any((c < 0).any() or c.shape != (self.k,) for c in self.census.values()):
            return "negative counts, or a census of another k"
        for user_id, (segment, vector) in self.users.items():
            if not -1 <= segment < self.k:
                return f"user {user_id!r}: segment {segment} is not one of 0..{self.k - 1}"
            if not (np.isfinite(vector).all() and np.abs(vector).sum() > 0):
                return f"user {user_id!r}: the vector is not finite or is zero"
        return ""

    def to_doc(self) -> dict[str, Any]:
        users = list(self.users)
        rows = np.flatnonzero(self.counts)
        return {
            "k": self.k,
            "dim": self.dim,
            "version": self.version,
            # A batch touches few segments: only their rows, in float32 (a batch's sum of unit
            # vectors keeps ~7 digits; the owner adds them up in float64).
            "rows": rows.tolist(),
            "sums": encode_array(self.sums[rows], "<f4"),
            "counts": self.counts.tolist(),
            "census": {str(p): c.tolist() for p, c in self.census.items()},
            "users": users,
            "segments": [self.users[u][0] for u in users],
            "vectors": encode_array(np.array([self.users[u][1] for u in users]).reshape(-1, self.dim), "<f2"),
            "rebuild": self.rebuild,
            "forget": self.forget,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CentroidStats:
        stats = cls(
            int(doc["k"]), int(doc["dim"]), int(doc["version"]), rebuild=doc["rebuild"], forget=list(doc.get("forget", []))
        )
        if "rows" in doc:
            stats.sums[doc["rows"]] = decode_array(doc["sums"], "<f4").reshape(-1, stats.dim)
        else:  # an update written without "rows": all k rows, in float64
            stats.sums = decode_array(doc["sums"], "<f8").reshape(stats.k, stats.dim)
        stats.counts = np.asarray(doc["counts"], dtype=np.int64)
        stats.census = {int(p): np.asarray(c, dtype=np.int64) for p, c in doc["census"].items()}
        vectors = decode_array(doc["vectors"], "<f2").astype(np.float32).reshape(-1, stats.dim)
        stats.users = {u: (int(s), v) for u, s, v in zip(doc["users"], doc["segments"], vectors)}
        return stats
