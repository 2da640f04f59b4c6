"""The streaming pass: a file's events through the worker's code path (:class:`LocalRun`), offline.

Micro-batches of ``SEGSTREAM_BATCH_SIZE`` go through the same pipeline and model loop the
worker uses, over an in-memory user store whose rows take the table's byte round trip, and a
dict standing in for the ``item-vectors`` topic every worker reads whole. Each distinct text is
encoded once (:class:`TextVectors`), before streaming.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.profiles import SegmentProfiles
from stream.config import Settings
from stream.contract.records import InvalidEvent, Message
from stream.core.catalogue import Catalogue, CatalogueItem, catalogue_text
from stream.core.local_run import LocalRun
from stream.core.pipeline import Pipeline
from stream.core.user_state import UserState
from stream.factories import new_segmentation
from stream.progress import progress as progress_bar
from stream.tools.evaluate.events_file import EventFile, StreamLine
from stream.tools.evaluate.recommend import id_key


class TextVectors:
    """The encoder with a per-process cache by text: each distinct text is encoded once."""

    def __init__(self, encoder: Any, batch_size: int = 0, progress: bool = False) -> None:
        self.encoder = encoder
        self.batch_size = batch_size or encoder.batch_size  # 0: the encoder's own (CPU or GPU)
        self.progress = progress
        self.cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0
        self.encoded = 0

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def warm(self, texts: Iterable[str], label: str = "texts") -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if not missing:
            return
        start = time.perf_counter()
        chunk = max(self.batch_size * 8, 1)
        bar = progress_bar(f"encoding {label}", len(missing)) if self.progress else nullcontext(_no_progress)
        with bar as update:
            for begin in range(0, len(missing), chunk):
                part = missing[begin : begin + chunk]
                rows = self.encoder.encode(part, batch_size=self.batch_size)
                for text, row in zip(part, rows):
                    self.cache[text] = np.array(row, dtype=np.float32)
                update(begin + len(part))
        self.seconds += time.perf_counter() - start
        self.encoded += len(missing)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.warm(texts)
        return np.stack([self.cache[t] for t in texts])


def _no_progress(done: int) -> None:
    """Progress goes nowhere (``TextVectors(progress=False)``)."""


def encode_items(file: EventFile, vectors: TextVectors) -> tuple[dict[str, Any], dict[str, np.ndarray], int]:
    """The catalogue as the worker's items agent builds it.

    Returns {item_id: what Pipeline.apply's catalogue callable returns}, {item_id: vector} and
    the number of invalid items.
    """
    good: dict[str, tuple[str, tuple[str, ...]]] = {}
    invalid = 0
    for line, raw in file.items:
        try:
            item, text = catalogue_text(Message("items", 0, line, None, raw))  # the worker's recipe
        except InvalidEvent:
            invalid += 1
            continue
        good[item.item_id] = (text, item.categories)  # a later version replaces the earlier, as in the table
    vectors.warm((text for text, _ in good.values()), "items")
    plain = {item_id: vectors.cache[text] for item_id, (text, _) in good.items()}
    catalogue = {item_id: CatalogueItem(plain[item_id], categories) for item_id, (_, categories) in good.items()}
    return catalogue, plain, invalid


def _messages(settings: Settings, lines: Sequence[StreamLine], first_offset: int) -> list[Message]:
    topic = {"review": settings.topic_reviews, "behavior": settings.topic_behaviors}
    return [
        Message(topic[line.kind], 0, first_offset + n, line.key, line.value) for n, line in enumerate(lines)
    ]


def review_texts(settings: Settings, lines: Sequence[StreamLine], dim: int) -> list[str]:
    """The cleaned review texts exactly as Pipeline.prepare produces them (to encode up front)."""
    reviews = [line for line in lines if line.kind == "review"]
    if not reviews:
        return []
    return Pipeline(settings, new_segmentation(settings, dim)).prepare(_messages(settings, reviews, 0)).texts


@dataclass
class StreamRun:
    states: dict[str, UserState]
    centroids: np.ndarray | None
    profiles: SegmentProfiles
    seconds: float
    events: int
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    changes: int = 0
    batches: int = 0

    @property
    def held(self) -> int:
        return sum(len(s.pending) for s in self.states.values())


def stream_once(
    settings: Settings,
    lines: Sequence[StreamLine],
    catalogue: Catalogue,
    text_vectors: TextVectors,
) -> StreamRun:
    """One pass of ``lines`` through the worker's code path, in micro-batches of batch_size.

    Offsets are the running position in this pass (one partition per topic), so they increase
    as a Kafka partition's do whatever order ``lines`` are in.
    """
    local = LocalRun(settings, text_vectors.dim, catalogue, encode=text_vectors)
    run = StreamRun({}, None, local.segmentation.profiles, 0.0, len(lines))
    start = time.perf_counter()
    for begin in range(0, len(lines), settings.batch_size):
        result = local.batch(_messages(settings, lines[begin : begin + settings.batch_size], begin))
        run.applied += result.applied
        run.duplicates += result.duplicates
        run.dead_letters += len(result.dead_letters)
        run.changes += len(result.changes)
        run.batches += 1
    run.seconds = time.perf_counter() - start
    run.states = {user_id: local.users.get(user_id) for user_id in local.users.user_ids()}
    run.profiles = local.segmentation.profiles
    centroids = local.segmentation.model.centroids
    run.centroids = None if centroids is None else np.array(centroids, dtype=np.float64)
    return run


def final_users(states: Mapping[str, UserState]) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Users with a vector and a segment (sorted by id), their vectors X, segments L, and the
    number of users with a vector but no segment yet."""
    users, rows, segments, unassigned = [], [], [], 0
    for user_id in sorted(states, key=id_key):
        state = states[user_id]
        vector = state.vector
        if vector is None:
            continue
        if state.segment is None:
            unassigned += 1
            continue
        users.append(user_id)
        rows.append(vector)
        segments.append(state.segment)
    dim = rows[0].shape[0] if rows else 0
    x = np.stack(rows).astype(np.float64) if rows else np.zeros((0, dim))
    return users, x, np.asarray(segments, dtype=np.int64), unassigned
