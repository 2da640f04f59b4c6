"""The CPU's dense matmul peak, measured, and the encoder's useful FLOP/s against it.

Peaks are square matmuls (:data:`PEAK_SIZE`) at the bench's thread count, best of a few runs:
fp32 and int8 (u8 activations x s8 weights, as the int8 graphs run) through onnxruntime's MLAS
kernels, which serve the ONNX engines; fp32 and bf16 through torch, which serves
sentence-transformers. Only what is measured here is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

PEAK_SIZE = 1024
PEAK_RUNS = 5


def layer_flops(texts: int, tokens: int, hidden: int, intermediate: int) -> int:
    """FLOPs of one BERT layer over a batch of ``texts`` padded to ``tokens``:

    - dense matmuls ``2 * texts * tokens * (4 * hidden**2 + 2 * hidden * intermediate)`` (Q, K, V
      and attention output projections, FFN in and out: 2 FLOPs per multiply-add per parameter);
    - attention ``4 * texts * tokens**2 * hidden`` (Q.K^T and the weights times V, over all heads).

    Layer norms, softmax, GELU, embeddings and pooling (a few % of the total) are not counted.
    """
    dense = 2 * texts * tokens * (4 * hidden * hidden + 2 * hidden * intermediate)
    return dense + 4 * texts * tokens * tokens * hidden


def encoder_flops(batches: Iterable[tuple[int, int]], layers: int, hidden: int, intermediate: int) -> int:
    """FLOPs to encode ``batches`` of (texts, padded tokens) with a ``layers``-layer BERT."""
    return sum(layers * layer_flops(n, tokens, hidden, intermediate) for n, tokens in batches)


def batch_shapes(inputs_for: Callable[[list[str]], dict[str, np.ndarray]], texts: Sequence[str], batch_size: int) -> list[tuple[int, int]]:
    """(texts, padded tokens) of each batch as the encoder runs ``texts``: sorted by length."""
    ordered = sorted(texts, key=len)
    shapes = []
    for start in range(0, len(ordered), batch_size):
        mask = inputs_for(list(ordered[start : start + batch_size]))["attention_mask"]
        shapes.append((int(mask.shape[0]), int(mask.shape[1])))
    return shapes


def _best_flops(run: Callable[[], Any], size: int, runs: int) -> float:
    run()  # warm-up
    best = min(_timed(run) for _ in range(runs))
    return 2 * size**3 / best


def _timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _ort_matmul(threads: int, size: int, integer: bool) -> Callable[[], Any]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if integer:
        a = rng.integers(0, 255, (size, size), dtype=np.uint8)
        weights = rng.integers(-127, 127, (size, size), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        a = rng.standard_normal((size, size), dtype=np.float32)
        weights = rng.standard_normal((size, size), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "peak", [helper.make_tensor_value_info("a", a_type, [size, size])],
        [helper.make_tensor_value_info("y", y_type, [size, size])], [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"a": a})


def _torch_matmul(size: int, dtype: Any) -> Callable[[], Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    return lambda: torch.mm(a, b)


def matmul_peaks(threads: int, bf16: bool, size: int = PEAK_SIZE, runs: int = PEAK_RUNS) -> dict[str, float]:
    """FLOP/s of a ``size`` square matmul per engine and type (bf16 only where the CPU has it;
    torch uses the threads it was set to)."""
    import torch

    runners = {
        "onnxruntime fp32": _ort_matmul(threads, size, integer=False),
        "onnxruntime int8": _ort_matmul(threads, size, integer=True),
        "torch fp32": _torch_matmul(size, torch.float32),
    }
    if bf16:
        runners["torch bf16"] = _torch_matmul(size, torch.bfloat16)
    return {name: _best_flops(run, size, runs) for name, run in runners.items()}
