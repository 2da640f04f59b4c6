"""The real embedded broker (one per run), settings of a test's own, and real worker processes."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from stream.config import Settings, load_settings
from stream.kafka import ensure_topics
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One Tansu broker (memory storage) for the whole run."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log).running() as running:
        yield running


_names = itertools.count()


@pytest.fixture
def settings_for(broker: EmbeddedBroker, onnx_dir: Path, tmp_path: Path) -> Callable[..., Settings]:
    """Settings with this test's own app id and topics, so tests never see each other's data."""

    def make(**overrides: object) -> Settings:
        name = f"t{next(_names)}-{uuid.uuid4().hex[:6]}"
        values: dict[str, object] = dict(
            bootstrap=broker.bootstrap,
            app_id=name,
            topic_reviews=f"{name}-reviews",
            topic_behaviors=f"{name}-behaviors",
            topic_items=f"{name}-items",
            topic_changes=f"{name}-changes",
            topic_membership=f"{name}-membership",
            topic_model=f"{name}-model",
            topic_model_updates=f"{name}-model-updates",
            topic_dead_letters=f"{name}-dead",
            store="memory://",
            data_dir=str(tmp_path / "data"),
            model_cache=str(onnx_dir.parent),
            prefer_gpu=False,
            web_port=free_port(),
            session_timeout_s=4.0,
            batch_wait_s=0.1,
            model_publish_interval_s=0.5,
        )
        values.update(overrides)
        settings = load_settings(env={}, **values)
        ensure_topics(settings)
        return settings

    return make


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``segstream worker`` processes; every one still running is stopped afterwards."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, command: Sequence[str] = ("worker",)) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", command).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(kill=True)
