"""How well the live segments fit, read back from Kafka: every user's latest row (the users
table's changelog) and the published centroids, against batch k-means on the same vectors.

The live inertia is each user's squared distance to the centroid of the segment the worker
gave them (hysteresis and all), not to the nearest one: what the recommender reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.segmentation import Segmentation
from stream.config import Settings
from stream.core.user_state import UserState
from stream.factories import segmentation_params
from stream.kafka import USERS_TABLE, cluster_config, read_last_value
from stream.tools.evaluate.metrics import batch_kmeans
from stream.tools.loss_report import records


@dataclass(frozen=True)
class LiveFit:
    users: int
    model_version: int
    inertia_live: float
    inertia_batch: float
    sizes: list[int]  # users per segment, from the rows

    @property
    def ratio(self) -> float:
        return self.inertia_live / self.inertia_batch if self.inertia_batch > 0 else 1.0

    def describe(self) -> str:
        return (
            f"live segments: inertia {self.ratio:.3f}x batch k-means (n_init=10) on the same {self.users:,} "
            f"user vectors, model v{self.model_version}"
        )


def latest_rows(settings: Settings) -> dict[str, UserState]:
    """Each user's newest row on the changelog (a tombstone removes the user)."""
    rows: dict[str, UserState] = {}
    for msg in records(settings, f"{settings.app_id}-{USERS_TABLE}-changelog"):
        user = msg.key().decode()
        if msg.value() is None:
            rows.pop(user, None)
        else:
            rows[user] = UserState.from_bytes(msg.value())
    return rows


def live_fit(settings: Settings) -> LiveFit | None:
    """The fit of the segments now, or None before the model is seeded or with fewer than k users."""
    assigned = [(s.vector, s.segment) for s in latest_rows(settings).values() if s.vector is not None and s.segment is not None]
    raw = read_last_value(cluster_config(settings), settings.topic_model)
    if raw is None or len(assigned) <= settings.k:
        return None
    x = np.stack([v for v, _ in assigned]).astype(np.float64)
    segments = np.array([s for _, s in assigned])
    model = Segmentation.from_bytes(raw, segmentation_params(settings), x.shape[1]).model
    if model.centroids is None:
        return None
    live = float(((x - model.centroids[segments]) ** 2).sum())
    labels, centers = batch_kmeans(x, settings.k)
    batch = float(((x - centers[labels]) ** 2).sum())
    return LiveFit(len(x), model.version, live, batch, np.bincount(segments, minlength=settings.k).tolist())
