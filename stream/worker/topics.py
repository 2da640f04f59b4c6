"""The topics a worker reads and writes, declared on its Faust app (values are raw bytes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from stream.config import Settings


@dataclass
class Topics:
    inputs: Any  # reviews and behaviours, keyed by user id
    items: Any  # the catalogue, keyed by item id
    changes: Any
    membership: Any
    dead_letters: Any
    model: Any  # one partition, compacted: the published segmentation
    updates: Any  # one partition: workers' updates for the model owner
    repartition: Any  # input events forwarded to their user's partition (stream/worker/repartition.py)
    item_vectors: Any  # the encoded catalogue (stream/worker/catalogue.py)
    forget: Any  # requests to forget users, on their partition (stream/worker/forget.py)

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        return cls(
            inputs=app.topic(*settings.input_topics, settings.topic_repartition, **raw),
            items=app.topic(settings.topic_items, **raw),
            changes=app.topic(settings.topic_changes, **raw),
            membership=app.topic(settings.topic_membership, **raw),
            dead_letters=app.topic(settings.topic_dead_letters, **raw),
            model=app.topic(settings.topic_model, partitions=1, **raw),
            updates=app.topic(settings.topic_model_updates, partitions=1, **raw),
            repartition=app.topic(settings.topic_repartition, **raw),
            item_vectors=app.topic(settings.topic_item_vectors, **raw),
            forget=app.topic(settings.topic_forget, **raw),
        )
