"""What ``auto`` serves on a CPU: the candidates its flags allow, timed once on fixed texts.

:func:`candidates` picks the graphs worth timing from the CPU's flags; :func:`calibrate` runs each
over :data:`TEXTS` and keeps the fastest whose cosine to fp32 is at least :data:`COSINE_FLOOR` on
average and :data:`COSINE_MIN_FLOOR` for every text; :func:`auto_precision` does that once per CPU and onnx directory and
records the choice and why in ``precision-auto.json`` next to the export, keyed by CPU model and
flags, so a cache copied to another CPU calibrates again there (and so does a change of a
candidate's recipe). Every process on the same CPU then
serves the same graph (the encoder fingerprint stays the same across a worker group).
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.export import read_json, write_json_atomic
from models.precision import recipe

log = logging.getLogger(__name__)

COSINE_FLOOR = 0.99  # mean over the texts, as the and the bench's figures are given
# No text may turn further: int8's worst text is ~0.985 (README, Benchmark), a user's vector
# averages many events, and segments are assigned from those.
COSINE_MIN_FLOOR = 0.98
RECORD_FILE = "precision-auto.json"
# Bump when candidates, graphs or the method change, so old records are not reused.
_RECORD_FORMAT = 2
REFERENCE = "fp32"
# Flags that decide the candidates, and that a record is keyed by.
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
KEY_FLAGS = frozenset({"avx2", "avx512f", "amx_tile"}) | INT8_FLAGS | BF16_FLAGS

# Review-like texts of 1 to 4 sentences (11 to 70 words, as the bench's news snippets and first
# sentences), fixed so every calibration times the same work.
_SENTENCES = (
    "The battery lasts two days and the screen is bright enough to read outside in the sun.",
    "Delivery took three weeks and nobody answered my emails about the missing parcel.",
    "Great value for money, and the customer service team replaced a faulty cable within a day.",
    "The central bank raised interest rates again, citing inflation that refuses to ease.",
    "My daughter loves the colours, but the zip broke after a month of school runs.",
    "The striker scored twice in the second half as the home side came back from two goals down.",
    "Comfortable shoes, true to size, although the sole squeaks on wooden floors.",
    "Researchers say the new chip uses half the power of its predecessor at the same speed.",
    "Not worth the price: the lid leaks and the handle got too hot to hold after five minutes.",
    "The sequel keeps the humour of the first film but drags in its final hour.",
    "Assembly instructions were unclear and two screws were missing from the box.",
    "Shares in the airline fell sharply after it warned that fuel costs would cut profits.",
    "I have bought this coffee for years and the new recipe tastes burnt and bitter.",
    "The hotel room was clean, quiet and a short walk from the old town and the harbour.",
    "Works as described; setup took five minutes with the phone app.",
    "Voters will choose a new parliament next spring after the coalition collapsed this week.",
)
TEXTS = tuple(
    " ".join(_SENTENCES[(i * 5 + j) % len(_SENTENCES)] for j in range(1 + i % 4)) for i in range(64)
)


def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU's model name and its flags that :func:`candidates` reads (empty off Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in cpuinfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                model = value.strip()
            elif name.strip() == "flags":
                flags = set(value.split())
            if flags and model:
                break
    except OSError:
        pass
    return {"model": model, "flags": sorted(flags & KEY_FLAGS)}


def cpu_key(identity: Mapping[str, Any]) -> str:
    return f"{identity['model']} [{' '.join(identity['flags'])}]"


def candidates(flags: Iterable[str]) -> tuple[str, ...]:
    """The precisions worth timing on a CPU with ``flags``; fp32 first (the reference).

    int8 where the CPU has int8 dot products (VNNI, AMX-INT8) or AVX2 (onnxruntime's u8s8 AVX2
    kernels still beat fp32 there, so both are timed). bf16 flags add nothing: onnxruntime's x86
    CPU kernels have no bfloat16 MatMul, so there is no bf16 graph to time (README, Benchmark).
    """
    flags = set(flags)
    found = ["fp32", "fp32-fused"]
    if flags & INT8_FLAGS or "avx2" in flags:
        found += ["int8", "int8-fused"]
    return tuple(found)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def calibrate(
    runners: Mapping[str, Callable[[Sequence[str]], np.ndarray]],
    texts: Sequence[str] = TEXTS,
    rounds: int = 2,
    floor: float = COSINE_FLOOR,
    min_floor: float = COSINE_MIN_FLOOR,
) -> dict[str, Any]:
    """Time each runner on ``texts`` (a warm-up, then ``rounds`` rounds, round-robin so load
    from other processes falls on all alike; the fastest round counts) and choose the fastest
    whose cosines to ``runners["fp32"]`` are >= ``floor`` in mean and >= ``min_floor`` each."""
    outputs = {name: np.asarray(run(texts), dtype=np.float32) for name, run in runners.items()}
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            started = time.perf_counter()
            run(texts)
            seconds[name].append(time.perf_counter() - started)
    table = {}
    for name in runners:
        cos = _cosines(outputs[name], outputs[REFERENCE])
        table[name] = {
            "seconds": min(seconds[name]),
            "texts_per_s": len(texts) / min(seconds[name]),
            "cos_mean": float(cos.mean()),
            "cos_min": float(cos.min()),
        }
    eligible = [n for n, row in table.items() if row["cos_mean"] >= floor and row["cos_min"] >= min_floor]
    choice = min(eligible, key=lambda n: table[n]["seconds"])
    return {
        "precision": choice, "floor": floor, "min_floor": min_floor, "texts": len(texts), "rounds": rounds,
        "candidates": table,
    }


def reason(record: Mapping[str, Any]) -> str:
    """One line: what was chosen, against what, on which CPU."""
    table = record["candidates"]
    timings = ", ".join(
        f"{name} {row['texts_per_s']:.0f}/s (cos mean {row['cos_mean']:.4f}, min {row['cos_min']:.4f})"
        for name, row in table.items()
    )
    return (
        f"fastest with cosine to fp32 >= {record['floor']} on average and >= {record['min_floor']} "
        f"for every text on {record['cpu']} with {record['threads']} "
        f"threads, calibrated {record['at']} over {record['texts']} texts: {timings}"
    )


def auto_precision(
    onnx_dir: Path,
    threads: int,
    runner_for: Callable[[str], Callable[[Sequence[str]], np.ndarray]],
    identity: Mapping[str, Any] | None = None,
    texts: Sequence[str] = TEXTS,
) -> tuple[str, str]:
    """(precision, reason) for ``auto`` on this CPU: the record in ``onnx_dir`` for this CPU, or
    a calibration of :func:`candidates` made now (under a lock, so concurrent starts calibrate
    once) and recorded. ``runner_for(precision)`` returns that graph's encode function. A cache
    this process cannot write (a read-only image) still gets a choice, made again at each start."""
    identity = identity or cpu_identity()
    key = cpu_key(identity)
    record_file = Path(onnx_dir) / RECORD_FILE
    with _locked(Path(onnx_dir) / f"{RECORD_FILE}.lock"):
        records = read_json(record_file)
        names = candidates(identity["flags"])
        recipes = {name: recipe(name) for name in names}
        record = records.get(key) if records.get("format") == _RECORD_FORMAT else None
        if record is None or record.get("recipes") != recipes:
            started = time.perf_counter()
            record = calibrate(_runners(names, runner_for), texts)
            record.update(
                cpu=key, threads=threads, recipes=recipes, seconds=round(time.perf_counter() - started, 1),
                at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            kept = records if records.get("format") == _RECORD_FORMAT else {}
            _record(record_file, {**kept, "format": _RECORD_FORMAT, key: record})
            log.info("encoder precision calibrated in %.1f s", record["seconds"])
    return record["precision"], reason(record)


def _runners(
    names: Sequence[str], runner_for: Callable[[str], Callable[[Sequence[str]], np.ndarray]]
) -> dict[str, Callable[[Sequence[str]], np.ndarray]]:
    """The candidates' encode functions; a graph that is not in the cache and cannot be made
    here (no optimum in a serving image) is left out. fp32, the reference, always exists."""
    runners = {}
    for name in names:
        try:
            runners[name] = runner_for(name)
        except ImportError as exc:
            log.warning("encoder precision %s not timed: its graph is not in the cache and %s", name, exc)
    return runners


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    try:
        lock = open(lock_file, "a")
    except OSError:  # a read-only cache: nobody can record, so there is nothing to serialise
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _record(record_file: Path, records: dict[str, Any]) -> None:
    try:
        write_json_atomic(record_file, records)
    except OSError as exc:
        log.warning(
            "encoder precision not recorded (%s): each start calibrates again; set "
            "SEGSTREAM_ENCODER_PRECISION to the precision chosen to skip it", exc,
        )
