"""Bench section 1: the encoder's sentences/s against sentence-transformers in the same run.

Sentences per second on real texts (BBC News snippets of review length, and their first
sentences) for sentence-transformers on torch (the baseline, batch 32, torch threads = the
physical cores available), the ONNX encoder in fp32 and int8, each also with batches in input
order (padded to the batch's longest) instead of sorted by length, and the tokenizer alone.
Where onnxruntime has CUDA, also the ONNX encoder in fp32 and fp16 on the GPU (and
sentence-transformers on it, where torch has CUDA) at ``--gpu-batch``. Every engine is timed
once per round, round after round, so load from other processes falls on all of them alike;
each figure is the median of the rounds after a warm-up. The ratio is to the baseline measured
in the same run; cosines are to the baseline's embeddings.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.encoder import Encoder, physical_cores
from models.export import default_model_path, export_onnx
from stream.config import load_settings
from stream.datasets.bbc import articles

BATCH_SIZE = 32
SNIPPET_CHARS = 400


def text_sets(n: int) -> dict[str, list[str]]:
    """``n`` BBC articles spread evenly over the corpus: their first 400 characters (review
    length, ~64 words) and their first sentence (tweet length)."""
    pool = articles()
    step = max(1, len(pool) // n)
    chosen = [a.text for a in pool[::step][:n]]
    snippets = [t[:SNIPPET_CHARS] for t in chosen]
    sentences = []
    for text in chosen:
        cut = text.find(". ")
        sentences.append(text[: cut + 1] if 0 < cut < SNIPPET_CHARS else text[:140])
    return {f"BBC snippets ({SNIPPET_CHARS} chars)": snippets, "first sentences": sentences}


def _timed_rounds(engines: dict[str, Callable[[], np.ndarray]], repeats: int) -> dict[str, float]:
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(repeats):
        for name, run in engines.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def encoder_section(n_texts: int, repeats: int, threads: int | None, gpu_batch: int, gpu_texts: int) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    settings = load_settings()
    cores = threads or physical_cores()
    torch.set_num_threads(cores)
    model_path = Path(settings.model_path) if settings.model_path else default_model_path()
    onnx_dir = export_onnx(model_path, Path(settings.model_cache))
    baseline = SentenceTransformer(str(model_path), device="cpu")
    fp32 = Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=cores, precision="fp32")
    int8 = Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=cores, precision="int8")
    gpu: dict[str, Callable[[list[str]], np.ndarray]] = {}
    if "CUDAExecutionProvider" in ort.get_available_providers():
        for precision in ("fp32", "fp16"):
            encoder = Encoder(onnx_dir, prefer_gpu=True, precision=precision)
            gpu[f"onnx {precision}, CUDA"] = lambda texts, encoder=encoder: encoder.encode(texts, gpu_batch)
        if torch.cuda.is_available():
            on_cuda = SentenceTransformer(str(model_path), device="cuda")
            gpu["sentence-transformers, CUDA"] = lambda texts: on_cuda.encode(
                texts, batch_size=gpu_batch, normalize_embeddings=True, convert_to_numpy=True
            )

    def tokenize(texts: list[str]) -> None:
        for start in range(0, len(texts), BATCH_SIZE):
            fp32.inputs_for(texts[start : start + BATCH_SIZE])

    sets = []
    for label, texts in text_sets(n_texts).items():
        # GPU engines get the texts repeated to gpu_texts: a few hundred take them milliseconds.
        tiled = texts * max(1, -(-gpu_texts // len(texts)))
        engines: dict[str, Callable[[], np.ndarray | None]] = {
            "sentence-transformers (torch)": lambda texts=texts: baseline.encode(
                texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True
            ),
            "onnx fp32": lambda texts=texts: fp32.encode(texts, BATCH_SIZE),
            "onnx int8": lambda texts=texts: int8.encode(texts, BATCH_SIZE),
            "onnx fp32, input order": lambda texts=texts: fp32.encode(texts, BATCH_SIZE, sort_by_length=False),
            "onnx int8, input order": lambda texts=texts: int8.encode(texts, BATCH_SIZE, sort_by_length=False),
            "tokenizer alone": lambda texts=texts: tokenize(texts),
            **{name: (lambda run=run, tiled=tiled: run(tiled)) for name, run in gpu.items()},
        }
        counts = {name: len(tiled) if name in gpu else len(texts) for name in engines}
        outputs = {name: run() for name, run in engines.items()}  # warm-up, and the embeddings
        medians = _timed_rounds(engines, repeats)
        reference = outputs["sentence-transformers (torch)"]
        base_rate = len(texts) / medians["sentence-transformers (torch)"]
        rows = []
        for name in engines:
            rate = counts[name] / medians[name]
            row: dict[str, Any] = {"engine": name, "sentences_per_s": rate, "ratio": rate / base_rate}
            if outputs[name] is not None:
                ours = outputs[name][: len(texts)]
                cos = (ours * reference).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
                row.update(cos_mean=float(cos.mean()), cos_min=float(cos.min()))
            rows.append(row)
        words = statistics.mean(len(t.split()) for t in texts)
        sets.append({"texts": label, "n": len(texts), "gpu_n": len(tiled), "mean_words": words, "rows": rows})
    return {
        "threads": cores,
        "batch_size": BATCH_SIZE,
        "gpu_batch_size": gpu_batch if gpu else None,
        "repeats": repeats,
        "sets": sets,
        "note": "the ONNX encoder sorts texts by length before batching (each batch padded to its "
        "longest) and tokenizes the next batch while the model runs; 'input order' rows turn the "
        "sorting off. sentence-transformers sorts by length too. 'tokenizer alone' is the fast "
        "tokenizer plus the input arrays, batch 32, on the CPU.",
    }


def print_encoder_section(result: dict[str, Any]) -> None:
    print(
        f"\n1. Encoder: sentences/s, median of {result['repeats']} rounds after a warm-up; batch "
        f"{result['batch_size']}, {result['threads']} threads (torch and onnxruntime intra-op)"
    )
    if result["gpu_batch_size"]:
        print(
            f"   CUDA rows: batch {result['gpu_batch_size']}, each round the set repeated (n below); "
            "ratios are to the CPU baseline"
        )
    else:
        print("   no CUDAExecutionProvider here: no GPU rows")
    for s in result["sets"]:
        repeated = f" (CUDA rows: {s['gpu_n']:,})" if result["gpu_batch_size"] else ""
        print(f"\n  {s['texts']}: {s['n']} texts{repeated}, {s['mean_words']:.0f} words on average")
        print(f"  {'engine':<32}{'sentences/s':>12}{'ratio':>8}{'cos mean':>10}{'cos min':>9}")
        for row in s["rows"]:
            cos = f"{row['cos_mean']:>10.4f}{row['cos_min']:>9.4f}" if "cos_mean" in row else f"{'-':>10}{'-':>9}"
            print(f"  {row['engine']:<32}{row['sentences_per_s']:>12,.1f}{row['ratio']:>7.2f}x{cos}")
    print(f"\n  {result['note']}")
