"""The segmentation one owner writes and every worker reads, and the updates workers send it.

A :class:`Segmentation` is the centroid model plus the segment profiles. Workers never change
theirs: after each batch they send a :class:`ModelUpdate` (centroid statistics and the batch's
profile counts) to a one-partition topic; the owner (whichever worker Kafka gives that
partition) :meth:`~Segmentation.learn`\\ s updates in offset order, exactly once by the offset it
records in the model, and publishes new versions, which the workers :meth:`~Segmentation.adopt`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.centroid_stats import CentroidStats
from models.clustering import KMeansParams, StreamingKMeans
from models.fingerprint import EncoderFingerprint
from models.profiles import ProfileParams, SegmentProfiles


@dataclass(frozen=True)
class SegmentationParams:
    """Hyperparameters of the model and of its profiles."""

    kmeans: KMeansParams
    profiles: ProfileParams


@dataclass
class ModelUpdate:
    """One worker batch, for the owner: centroid statistics, profile counts to add (events, and
    members who joined a segment) and to take away (members who left one)."""

    stats: CentroidStats
    profiles: SegmentProfiles
    removed: SegmentProfiles

    def __bool__(self) -> bool:
        return bool(self.stats) or not self.profiles.empty or not self.removed.empty

    def problem(self) -> str:
        """Why the owner must not learn this update ("" when it may)."""
        return self.stats.problem() or self.profiles.problem() or self.removed.problem()

    def to_bytes(self) -> bytes:
        doc = {
            "stats": self.stats.to_doc(),
            "profiles": self.profiles.to_doc(candidates=True),
            "removed": self.removed.to_doc(candidates=True),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ModelUpdate:
        doc = json.loads(raw)
        profiles = SegmentProfiles.from_doc(doc["profiles"])
        removed = SegmentProfiles.from_doc(doc["removed"]) if "removed" in doc else SegmentProfiles.new_like(profiles)
        return cls(CentroidStats.from_doc(doc["stats"]), profiles, removed)


@dataclass
class Segmentation:
    """Centroids and segment profiles, published together as one JSON document, with the
    fingerprint of the encoder whose vectors they are made of (None: a snapshot written before
    segstream recorded it, or a model that never left one process)."""

    params: SegmentationParams
    model: StreamingKMeans
    profiles: SegmentProfiles
    encoder: EncoderFingerprint | None = None

    @classmethod
    def new(cls, params: SegmentationParams, dim: int, encoder: EncoderFingerprint | None = None) -> Segmentation:
        """An unseeded model with empty profiles, for vectors of ``encoder``."""
        return cls(params, StreamingKMeans(params.kmeans, dim), SegmentProfiles.new(params.profiles), encoder)

    @property
    def version(self) -> int:
        return self.model.version

    def new_update(self) -> ModelUpdate:
        """An empty update for a batch assigned with this version."""
        return ModelUpdate(
            self.model.new_stats(), SegmentProfiles.new(self.params.profiles), SegmentProfiles.new(self.params.profiles)
        )

    def predict(
        self, x: np.ndarray, current: np.ndarray | None = None, hysteresis: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Segments and distances under this version (:meth:`StreamingKMeans.predict`)."""
        return self.model.predict(x, current, hysteresis)

    def learn(self, update: ModelUpdate, offset: int) -> bool:
        """The owner folds in the update at ``offset`` of the updates topic, once: False when
        it is skipped (a redelivery, or a new owner re-reading what the model already holds)."""
        if offset <= self.model.updates_offset:
            return False
        self.model.learn(update.stats)
        self.profiles.merge(update.profiles)
        self.profiles.subtract(update.removed)
        for user_id in update.stats.forget:
            self.profiles.forget_user(user_id)
        self.model.updates_offset = offset
        return True

    def adopt(self, published: Segmentation) -> bool:
        """A worker takes a newer publication: True when it brings a new version (new
        centroids: time to sweep), False for none or only newer sizes and profiles."""
        newer = (published.version, published.model.updates_offset) > (self.version, self.model.updates_offset)
        new_version = published.version > self.version
        if newer:
            self.model.adopt(published.model)
            self.profiles = published.profiles
        return new_version

    def to_bytes(self) -> bytes:
        doc = {
            "model": self.model.to_doc(),
            "profiles": self.profiles.to_doc(),
            "encoder": None if self.encoder is None else self.encoder.to_doc(),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, params: SegmentationParams, dim: int) -> Segmentation:
        """A published snapshot, configured by ``params`` (its k and dim must agree)."""
        doc: dict[str, Any] = json.loads(raw)
        model = StreamingKMeans.from_doc(doc["model"], params.kmeans, dim)
        encoder = doc.get("encoder")
        return cls(
            params, model, SegmentProfiles.from_doc(doc["profiles"]),
            None if encoder is None else EncoderFingerprint.from_doc(encoder),
        )
