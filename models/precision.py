"""Precisions of the encoder's graph: each a file next to ``model.onnx``, made once on first use.

- ``fp32`` serves ``model.onnx`` as exported.
- ``int8`` serves ``model_quantized.onnx``: dynamic quantization (weights int8 per output
  channel, activations uint8 quantized per batch at run time) of the MatMuls; for CPUs.
- ``fp16`` serves ``model_fp16.onnx``: optimum's transformer optimizer (fused attention,
  skip-layer-norm, bias-GELU) and float16 weights and activations, float32 in and out; for
  GPUs (tensor cores). onnxruntime's CPU kernels run it too, more slowly than fp32.
- ``auto`` is fp16 when the session runs on CUDA, else fp32 (:func:`resolve`).

optimum is imported inside the builders, so serving a graph already made does not need it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.export import read_json, write_json_atomic

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "int8", "fp16")
QUANTIZED_FILE = "model_quantized.onnx"
FP16_FILE = "model_fp16.onnx"

# Dynamic (no calibration data), weights signed int8 per output channel, activations uint8:
# optimum's avx512_vnni preset (u8s8). This host has AVX2 but neither AVX-512 nor VNNI, and
# the preset still fits it: onnxruntime's AVX2 kernels run u8s8 (vpmaddubsw), and measured here
# it is about twice as fast as the avx2 preset's u8u8 weights at the same cosine to fp32.
# Only MatMul is quantized: the embedding Gather stays fp32 (better cosine, no speed cost).
_QUANTIZE_RECIPE = {
    "format": 1,
    "preset": "avx512_vnni",
    "is_static": False,
    "per_channel": True,
    "operators": ["MatMul"],
}
# optimum's ORTOptimizer for GPUs: level 2 fusions (no GPU is needed to write the graph;
# onnxruntime applies its device-specific ones when a session loads it), then float16 with
# float32 inputs and outputs kept, so callers feed and read the same arrays as for fp32.
_FP16_RECIPE = {"format": 1, "optimization_level": 2, "optimize_for_gpu": True, "fp16": True}


def _derived_model(
    onnx_dir: Path, file_name: str, recipe: dict[str, Any], build: Callable[[Path, Path], Path]
) -> Path:
    """``onnx_dir/file_name``, made from ``model.onnx`` by ``build(onnx_dir, tmp_dir) -> produced
    file`` unless already made with ``recipe``; reuse if done.

    It is built in a temp dir beside ``onnx_dir`` and moved into place with an atomic rename;
    the recipe file (``<stem>.json``) is written after it, so a crash never leaves a file that
    looks done and changing a recipe rebuilds instead of reusing a stale file. Concurrent
    callers race harmlessly.
    """
    onnx_dir = Path(onnx_dir)
    target = onnx_dir / file_name
    recipe_file = target.with_suffix(".json")
    if target.is_file() and read_json(recipe_file) == recipe:
        return target
    if not (onnx_dir / "model.onnx").is_file():
        raise FileNotFoundError(f"{onnx_dir / 'model.onnx'} missing: run export_onnx first")
    tmp = Path(tempfile.mkdtemp(prefix=f".{onnx_dir.name}.{target.stem}.", suffix=".tmp", dir=onnx_dir.parent))
    try:
        log.info("making %s from %s (%s)", file_name, onnx_dir / "model.onnx", recipe)
        produced = build(onnx_dir, tmp)
        if not produced.is_file():
            raise RuntimeError(f"optimum produced no {file_name} for {onnx_dir}")
        produced.chmod(0o644)
        os.replace(produced, target)
        write_json_atomic(recipe_file, recipe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def quantize_onnx(onnx_dir: Path) -> Path:
    """``model_quantized.onnx``: int8 dynamic quantization of ``onnx_dir/model.onnx``, made once."""

    def build(source: Path, tmp: Path) -> Path:
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        config = getattr(AutoQuantizationConfig, _QUANTIZE_RECIPE["preset"])(
            is_static=_QUANTIZE_RECIPE["is_static"],
            per_channel=_QUANTIZE_RECIPE["per_channel"],
            operators_to_quantize=list(_QUANTIZE_RECIPE["operators"]),
        )
        # ORTQuantizer also copies config/tokenizer files into save_dir: only the model is kept.
        ORTQuantizer.from_pretrained(source, file_name="model.onnx").quantize(
            config, save_dir=tmp, file_suffix="quantized"
        )
        return tmp / QUANTIZED_FILE

    return _derived_model(onnx_dir, QUANTIZED_FILE, _QUANTIZE_RECIPE, build)


def convert_fp16(onnx_dir: Path) -> Path:
    """``model_fp16.onnx``: ``onnx_dir/model.onnx`` optimized for GPUs in float16, made once."""

    def build(source: Path, tmp: Path) -> Path:
        from optimum.onnxruntime import ORTOptimizer
        from optimum.onnxruntime.configuration import OptimizationConfig

        config = OptimizationConfig(**{k: v for k, v in _FP16_RECIPE.items() if k != "format"})
        # Without a GPU the optimizer skips onnxruntime's offline pass and logs that as an error;
        # a session applies the same optimizations when it loads the graph, so it is only noise.
        optimizer_log = logging.getLogger("onnxruntime.transformers.optimizer")
        level = optimizer_log.level
        optimizer_log.setLevel(logging.CRITICAL)
        try:
            ORTOptimizer.from_pretrained(source, file_names=["model.onnx"]).optimize(
                config, save_dir=tmp, file_suffix="fp16"
            )
        finally:
            optimizer_log.setLevel(level)
        return tmp / FP16_FILE

    return _derived_model(onnx_dir, FP16_FILE, _FP16_RECIPE, build)


_GRAPHS: dict[str, Callable[[Path], Path]] = {
    "fp32": lambda onnx_dir: Path(onnx_dir) / "model.onnx",
    "int8": quantize_onnx,
    "fp16": convert_fp16,
}


def resolve(precision: str, on_gpu: bool) -> str:
    """The precision ``auto`` stands for on this device; others as they are."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown encoder precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if on_gpu else "fp32"
    return precision


def graph_file(onnx_dir: Path, precision: str) -> Path:
    """The graph of a resolved ``precision`` in ``onnx_dir``, made on first use."""
    return _GRAPHS[precision](onnx_dir)
