"""Shared fixtures: the real model, exported once per run. Tests under tests/integration get the
``integration`` marker (real broker and worker processes): ``pytest -m "not integration"`` is
the fast lane."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.encoder import Encoder
from models.export import export_onnx, minilm_model_path
from models.registry import model_folder
from stream.config import Settings

INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _model_cache_dir() -> Path:
    """ONNX export cache shared across runs (export takes seconds), overridable by env."""
    configured = os.environ.get("SEGSTREAM_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "segstream" / "models"


def _exported(folder: Path) -> Path:
    """``folder`` exported to ONNX (reused from the cache when present), with ``auto``
    calibrated for this CPU (models/calibration.py) before any worker process needs it."""
    exported = export_onnx(folder, _model_cache_dir())
    Encoder(exported, prefer_gpu=False)
    return exported


@pytest.fixture(scope="session")
def onnx_dir() -> Path:
    """The default encoder (``Settings.model``) exported to ONNX: what a worker serves when
    nothing picks another."""
    return _exported(model_folder(Settings.model, _model_cache_dir()))


@pytest.fixture(scope="session")
def minilm_onnx_dir() -> Path:
    """all-MiniLM-L6-v2 exported to ONNX: the English-only encoder, for its parity with
    sentence-transformers and for what it cannot read."""
    return _exported(minilm_model_path())


@pytest.fixture(scope="session")
def encoder(onnx_dir: Path) -> Encoder:
    """CPU fp32 encoder over :func:`onnx_dir` (the reference: ``auto`` may serve int8 on a CPU),
    so results do not depend on the host's GPU or CPU."""
    return Encoder(onnx_dir, prefer_gpu=False, precision="fp32")


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> tuple[Path, str]:
    """A folder nobody may write in, and the reason the OS gives: by its mode, or for root (whom
    modes do not stop) a path under a regular file, which can never be a folder."""
    if os.geteuid() == 0:
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "data", "Not a directory"
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    return folder, "Permission denied"
