"""From :class:`Settings` to what models/ provides: the segmentation's parameters and the encoder.

models/ knows nothing of settings; these are the only places that translate them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from models.clustering import KMeansParams
from models.profiles import ProfileParams
from models.segmentation import Segmentation, SegmentationParams
from stream.config import Settings

if TYPE_CHECKING:
    from models.encoder import Encoder
    from models.fingerprint import EncoderFingerprint

# Per segment; they keep a published snapshot of model and profiles well under Kafka's
# default 1 MB message.
PROFILE_MAX_TERMS = 1000
PROFILE_MAX_ITEMS = 500
# onnxruntime and onnxruntime-gpu install the same module, so each is an extra and neither a
# dependency (pyproject.toml): an install without either is possible.
NO_RUNTIME = (
    "segstream: onnxruntime is not installed; install the encoder's runtime with the extra "
    "segstream[cpu] (onnxruntime), or segstream[gpu] (onnxruntime-gpu, CUDA)"
)


def segmentation_params(settings: Settings) -> SegmentationParams:
    return SegmentationParams(
        KMeansParams(
            k=settings.k,
            seed_users=settings.seed_users,
            reservoir_size=settings.reservoir_users,
            refresh_every=settings.refresh_every,
            half_life_updates=settings.model_half_life_updates,
            margin=settings.hysteresis,
        ),
        ProfileParams(settings.k, settings.half_life_s, PROFILE_MAX_TERMS, PROFILE_MAX_ITEMS, settings.term_min_users),
    )


def new_segmentation(settings: Settings, dim: int, encoder: EncoderFingerprint | None = None) -> Segmentation:
    """An unseeded model and empty profiles configured by ``settings``, for vectors of ``encoder``."""
    return Segmentation.new(segmentation_params(settings), dim, encoder)


def require_runtime() -> None:
    """Exits with one line naming the extra to install where no onnxruntime module is importable."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise SystemExit(NO_RUNTIME)


def model_folder_of(settings: Settings) -> Path:
    """``SEGSTREAM_MODEL_PATH`` when set, else the folder of the encoder ``SEGSTREAM_MODEL`` names
    (built into the model cache the first time: models/registry.py)."""
    if settings.model_path:
        return Path(settings.model_path)
    from models.registry import model_folder

    return model_folder(settings.model, Path(settings.model_cache))


def encoder_for(settings: Settings) -> Encoder:
    """The encoder ``settings`` describe, exported on first use (imports onnxruntime)."""
    require_runtime()
    from models.encoder import load_encoder

    return load_encoder(
        model_folder_of(settings),
        Path(settings.model_cache),
        prefer_gpu=settings.prefer_gpu,
        intra_op_threads=settings.encoder_threads or None,
        precision=settings.encoder_precision,
    )
