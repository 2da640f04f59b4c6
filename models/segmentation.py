"""The segmentation one owner writes and every worker reads, and the updates workers send it.

A :class:`Segmentation` is the centroid model plus the segment profiles. Workers never change
theirs: after each batch they send a :class:`ModelUpdate` (centroid statistics and the batch's
profile counts) to a one-partition topic; the owner (whichever worker Kafka gives that
partition) applies updates in offset order, exactly once by the offset it records in the model,
and publishes new versions, which the workers adopt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.clustering import CentroidStats, StreamingKMeans, new_model
from models.profiles import SegmentProfiles, new_profiles

if TYPE_CHECKING:
    from stream.config import Settings


@dataclass
class ModelUpdate:
    """One worker batch, for the owner: centroid statistics and profile counts."""

    stats: CentroidStats
    profiles: SegmentProfiles

    def __bool__(self) -> bool:
        return bool(self.stats) or not self.profiles.empty

    def to_bytes(self) -> bytes:
        return json.dumps({"stats": self.stats.to_doc(), "profiles": self.profiles.to_doc()}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ModelUpdate:
        doc = json.loads(raw)
        return cls(CentroidStats.from_doc(doc["stats"]), SegmentProfiles.from_doc(doc["profiles"]))


@dataclass
class Segmentation:
    """Centroids and segment profiles, published together as one JSON document."""

    model: StreamingKMeans
    profiles: SegmentProfiles

    @property
    def version(self) -> int:
        return self.model.version

    def new_update(self, settings: Settings) -> ModelUpdate:
        """An empty update for a batch assigned with this version."""
        return ModelUpdate(self.model.stats(), new_profiles(settings))

    def apply(self, update: ModelUpdate, offset: int) -> bool:
        """The owner folds in the update at ``offset`` of the updates topic, once: False when
        it is skipped (a redelivery, or a new owner re-reading what the model already holds)."""
        if offset <= self.model.updates_offset:
            return False
        self.model.apply(update.stats)
        self.profiles.merge(update.profiles)
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
        return json.dumps({"model": self.model.to_doc(), "profiles": self.profiles.to_doc()}, separators=(",", ":")).encode()

    def restore(self, raw: bytes) -> Segmentation:
        """Load a published snapshot into this (configured) segmentation."""
        doc: dict[str, Any] = json.loads(raw)
        self.model.restore(doc["model"])
        self.profiles = SegmentProfiles.from_doc(doc["profiles"])
        return self


def new_segmentation(settings: Settings, dim: int) -> Segmentation:
    """An unseeded model and empty profiles configured by ``settings``."""
    return Segmentation(new_model(settings, dim), new_profiles(settings))
