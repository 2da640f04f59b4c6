"""Precisions of the encoder's graph: each a file next to ``model.onnx``, made once on first use.

- ``fp32`` serves ``model.onnx`` as exported.
- ``int8`` serves ``model_quantized.onnx``: dynamic quantization (weights int8 per output
  channel, activations uint8 quantized per batch at run time) of the MatMuls; for CPUs.
- ``fp16`` serves ``model_fp16.onnx``: optimum's transformer optimizer (fused attention,
  skip-layer-norm, bias-GELU) and float16 weights and activations, float32 in and out; for
  GPUs (tensor cores). onnxruntime's CPU kernels run it too, more slowly than fp32.
- ``fp32-fused`` serves ``model_fused.onnx``: onnxruntime's transformer optimizer for CPUs
  (EmbedLayerNormalization, Attention, SkipLayerNormalization and BiasGelu fused), float32.
- ``int8-fused`` serves ``model_fused_int8.onnx``: that fused graph with the same dynamic u8s8
  per-channel quantization applied to its MatMuls but the FFN's down projections (fed by the
  GELU) and the fused Attention, which stay fp32 for a min cosine to fp32 above 0.99.
- ``auto`` is fp16 when the session runs on CUDA; on a CPU, the candidate the CPU's flags allow
  that a short calibration found fastest within cosine 0.99 of fp32 (models/calibration.py).

There is no bf16 graph: onnxruntime's x86 CPU kernels have no bfloat16 MatMul or Attention,
so a bf16 graph could only run through casts (see README's Benchmark section).

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

PRECISIONS = ("auto", "fp32", "fp32-fused", "int8", "int8-fused", "fp16")
QUANTIZED_FILE = "model_quantized.onnx"
FP16_FILE = "model_fp16.onnx"
FUSED_FILE = "model_fused.onnx"
FUSED_INT8_FILE = "model_fused_int8.onnx"

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
# onnxruntime's transformer optimizer, its offline fusions only (opt_level 0): the graph stays
# free of a session's device-specific rewrites, which each session applies when it loads it.
_FUSED_RECIPE = {"format": 1, "model_type": "bert", "opt_level": 0, "use_gpu": False}
# The fused graph's MatMuls quantized dynamically, weights int8 per output channel, activations
# uint8, except those fed by the GELU (the FFN's down projection, whose heavy-tailed inputs lose
# most to uint8); the fused Attention (QKV projection and scores) stays fp32. Measured on an
# AVX-512 VNNI EPYC (README, Benchmark): with every MatMul quantized the min cosine to fp32 is
# 0.988-0.990; without the GELU-fed ones it is 0.995-0.997 on review-length texts.
_FUSED_INT8_RECIPE = {
    "format": 2,
    "fused": _FUSED_RECIPE,
    "per_channel": True,
    "reduce_range": False,
    "operators": ["MatMul"],
    "exclude": "MatMuls fed by Gelu/BiasGelu/FastGelu",
}
_GELU_OPS = ("Gelu", "BiasGelu", "FastGelu")


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


def fuse_onnx(onnx_dir: Path) -> Path:
    """``model_fused.onnx``: ``onnx_dir/model.onnx`` with its transformer blocks fused for CPUs."""

    def build(source: Path, tmp: Path) -> Path:
        from onnxruntime.transformers.optimizer import optimize_model

        recipe = {k: v for k, v in _FUSED_RECIPE.items() if k != "format"}
        # num_heads and hidden_size 0: read from the graph's shapes.
        optimize_model(str(source / "model.onnx"), num_heads=0, hidden_size=0, **recipe).save_model_to_file(
            str(tmp / FUSED_FILE)
        )
        return tmp / FUSED_FILE

    return _derived_model(onnx_dir, FUSED_FILE, _FUSED_RECIPE, build)


def quantize_fused_onnx(onnx_dir: Path) -> Path:
    """``model_fused_int8.onnx``: :func:`fuse_onnx`'s graph quantized to int8, made once."""

    def build(source: Path, tmp: Path) -> Path:
        import onnx
        from onnx import TensorProto
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fused = fuse_onnx(source)
        nodes = onnx.load(fused, load_external_data=False).graph.node
        gelu_outputs = {out for n in nodes if n.op_type in _GELU_OPS for out in n.output}
        quantize_dynamic(
            fused,
            tmp / FUSED_INT8_FILE,
            per_channel=_FUSED_INT8_RECIPE["per_channel"],
            reduce_range=_FUSED_INT8_RECIPE["reduce_range"],
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(_FUSED_INT8_RECIPE["operators"]),
            nodes_to_exclude=[n.name for n in nodes if n.op_type == "MatMul" and set(n.input) & gelu_outputs],
            # Shape inference cannot type the outputs of contrib ops (Attention, ...): float.
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
        return tmp / FUSED_INT8_FILE

    return _derived_model(onnx_dir, FUSED_INT8_FILE, _FUSED_INT8_RECIPE, build)


_GRAPHS: dict[str, Callable[[Path], Path]] = {
    "fp32": lambda onnx_dir: Path(onnx_dir) / "model.onnx",
    "fp32-fused": fuse_onnx,
    "int8": quantize_onnx,
    "int8-fused": quantize_fused_onnx,
    "fp16": convert_fp16,
}


def recipe(precision: str) -> dict[str, Any]:
    """How the graph of a resolved ``precision`` is made (empty for the export itself)."""
    recipes = {"int8": _QUANTIZE_RECIPE, "fp16": _FP16_RECIPE, "fp32-fused": _FUSED_RECIPE, "int8-fused": _FUSED_INT8_RECIPE}
    return recipes.get(precision, {})


def resolve(precision: str, on_gpu: bool) -> str:
    """``auto`` on a GPU is fp16; on a CPU it stays ``auto``, which the CPU's calibration
    resolves (models/calibration.py); others as they are."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown encoder precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return "fp16" if precision == "auto" and on_gpu else precision


def graph_file(onnx_dir: Path, precision: str) -> Path:
    """The graph of a resolved ``precision`` in ``onnx_dir``, made on first use."""
    return _GRAPHS[precision](onnx_dir)
