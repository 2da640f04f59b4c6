"""The bench's FLOP count of a BERT encoder and its matmul peaks."""

from __future__ import annotations

import numpy as np

from stream.tools.bench.peak import batch_shapes, encoder_flops, layer_flops, matmul_peaks


def test_layer_flops_count_dense_matmuls_and_attention() -> None:
    # MiniLM-L6: hidden 384, FFN 1536. One text of 10 tokens:
    dense = 2 * 10 * (4 * 384 * 384 + 2 * 384 * 1536)
    attention = 4 * 10 * 10 * 384
    assert layer_flops(1, 10, 384, 1536) == dense + attention
    assert layer_flops(32, 10, 384, 1536) == 32 * (dense + attention)
    # 6 layers, two batches: about 21 MFLOP per token for short texts, dense dominating.
    total = encoder_flops([(32, 10), (8, 20)], 6, 384, 1536)
    assert total == 6 * (layer_flops(32, 10, 384, 1536) + layer_flops(8, 20, 384, 1536))
    assert 21e6 < total / (32 * 10 + 8 * 20) < 22e6


def test_batch_shapes_follow_the_encoders_sorted_padded_batches() -> None:
    def inputs_for(texts: list[str]) -> dict[str, np.ndarray]:
        return {"attention_mask": np.ones((len(texts), max(len(t) for t in texts)), dtype=np.int64)}

    texts = ["aaaa", "a", "aaaaaaaa", "aa", "aaa"]
    assert batch_shapes(inputs_for, texts, 2) == [(2, 2), (2, 4), (1, 8)]


def test_matmul_peaks_are_measured_per_kernel() -> None:
    peaks = matmul_peaks(1, bf16=False, size=64, runs=1)
    assert set(peaks) == {"onnxruntime fp32", "onnxruntime int8", "torch fp32"}
    assert all(value > 1e6 for value in peaks.values())
