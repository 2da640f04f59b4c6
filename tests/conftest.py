"""Shared pytest fixtures for segstream."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from models.encoder import Encoder, export_onnx
from stream.config import Settings, load_settings
from stream.kafka import EmbeddedBroker, ensure_topics, free_port
from stream.launcher import WorkerProcess


def _model_cache_dir() -> Path:
    """ONNX export cache shared across runs (export takes seconds), overridable by env."""
    configured = os.environ.get("SEGSTREAM_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "segstream" / "models"


@pytest.fixture(scope="session")
def onnx_dir() -> Path:
    """The bundled MiniLM exported to ONNX (reused from the cache when present)."""
    return export_onnx(None, _model_cache_dir())


@pytest.fixture(scope="session")
def encoder(onnx_dir: Path) -> Encoder:
    """CPU encoder over :func:`onnx_dir`, so results do not depend on the host's GPU."""
    return Encoder(onnx_dir, prefer_gpu=False)


# --- the real embedded broker and real workers -------------------------------------------


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
