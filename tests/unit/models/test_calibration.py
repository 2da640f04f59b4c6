"""auto on a CPU: candidates from the flags, the calibration's choice, and its record per CPU."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.encoder import Encoder
from models.precision import graph_file, recipe
from models.calibration import RECORD_FILE, TEXTS, auto_precision, calibrate, candidates, cpu_identity, cpu_key

EPYC = {"model": "AMD EPYC", "flags": ["avx2", "avx512_bf16", "avx512_vnni", "avx512f"]}
XEON = {"model": "Intel Xeon", "flags": ["amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512_vnni", "avx512f"]}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (set(), ("fp32", "fp32-fused")),
        ({"sse4_2", "avx"}, ("fp32", "fp32-fused")),
        ({"avx2"}, ("fp32", "fp32-fused", "int8", "int8-fused")),
        ({"avx512_vnni", "avx512_bf16"}, ("fp32", "fp32-fused", "int8", "int8-fused")),
        ({"amx_int8"}, ("fp32", "fp32-fused", "int8", "int8-fused")),
        ({"avx512_bf16", "amx_bf16"}, ("fp32", "fp32-fused")),  # no bf16 kernels in onnxruntime's CPU EP
    ],
)
def test_candidates_follow_the_cpu_flags(flags: set[str], expected: tuple[str, ...]) -> None:
    assert candidates(flags) == expected


def test_cpu_identity_reads_model_and_deciding_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512_vnni sha_ni\n")
    identity = cpu_identity(cpuinfo)
    assert identity == {"model": "AMD EPYC", "flags": ["avx2", "avx512_vnni", "avx512f"]}
    assert cpu_key(identity) == "AMD EPYC [avx2 avx512_vnni avx512f]"


def _runner(noise: float, delay: float, calls: list[str] | None = None, name: str = "") -> Callable[[Sequence[str]], np.ndarray]:
    """A fake encoder: fixed vectors per text, plus ``noise``, taking ``delay`` seconds."""

    def run(texts: Sequence[str]) -> np.ndarray:
        if calls is not None:
            calls.append(name)
        time.sleep(delay)
        base = np.stack([np.random.default_rng(len(t)).standard_normal(16) for t in texts])
        return base + noise * np.random.default_rng(1).standard_normal(base.shape)

    return run


def test_calibration_keeps_the_fastest_above_the_cosine_floor() -> None:
    runners = {
        "fp32": _runner(0.0, 0.1),
        "int8": _runner(0.02, 0.05),  # cosine ~0.9998: chosen
        "int8-fused": _runner(0.5, 0.02),  # fastest, cosine ~0.89: never chosen
    }
    record = calibrate(runners, TEXTS[:4], rounds=1)
    table = record["candidates"]
    assert table["int8-fused"]["cos_min"] < 0.99 and table["int8-fused"]["seconds"] < table["int8"]["seconds"]
    assert record["precision"] == "int8"
    assert table["fp32"]["cos_min"] == pytest.approx(1.0)
    assert calibrate({"fp32": runners["fp32"], "bad": runners["int8-fused"]}, TEXTS[:4], rounds=1)["precision"] == "fp32"


def test_the_record_is_reused_on_the_same_cpu_and_remade_on_another(tmp_path: Path) -> None:
    calls: list[str] = []

    def runner_for(name: str) -> Callable[[Sequence[str]], np.ndarray]:
        return _runner(0.0 if name.startswith("fp32") else 0.02, 0.0, calls, name)

    precision, reason = auto_precision(tmp_path, 2, runner_for, identity=EPYC, texts=TEXTS[:3])
    assert precision in candidates(EPYC["flags"]) and "AMD EPYC" in reason and "int8-fused" in reason
    made = len(calls)
    assert made == 4 * 3  # 4 candidates: a warm-up and 2 rounds each

    assert auto_precision(tmp_path, 2, runner_for, identity=EPYC, texts=TEXTS[:3]) == (precision, reason)
    assert len(calls) == made  # same CPU: the record answers

    auto_precision(tmp_path, 2, runner_for, identity=XEON, texts=TEXTS[:3])
    assert len(calls) > made  # another CPU calibrates again
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    assert set(record) == {"format", cpu_key(EPYC), cpu_key(XEON)}
    epyc = record[cpu_key(EPYC)]
    assert epyc["threads"] == 2 and set(epyc["candidates"]) == set(candidates(EPYC["flags"]))
    assert {"texts_per_s", "cos_mean", "cos_min", "seconds"} <= set(epyc["candidates"]["int8"])


def test_the_floor_is_on_the_mean_with_a_lower_one_for_every_text() -> None:
    def shifted(turned: list[int], by: float) -> Callable[[Sequence[str]], np.ndarray]:
        """Unit vectors; the texts at ``turned`` turned so their cosine to fp32 is ``1 - by``."""

        def run(texts: Sequence[str]) -> np.ndarray:
            out = np.zeros((len(texts), 2))
            out[:, 0] = 1.0
            for i in turned:
                out[i] = [1 - by, np.sqrt(1 - (1 - by) ** 2)]
            return out

        return run

    runners = {"fp32": shifted([], 0), "int8": shifted([0], 0.015), "int8-fused": shifted([0], 0.025)}
    record = calibrate(runners, TEXTS[:4], rounds=1)
    table = record["candidates"]
    assert table["int8"]["cos_mean"] >= 0.99 and 0.98 <= table["int8"]["cos_min"] < 0.99
    assert table["int8-fused"]["cos_mean"] >= 0.99 and table["int8-fused"]["cos_min"] < 0.98
    assert record["precision"] in {"fp32", "int8"}  # int8-fused is out whatever its speed
    assert "int8-fused" not in {calibrate({"fp32": runners["fp32"], "int8-fused": runners["int8-fused"]}, TEXTS[:4], rounds=1)["precision"]}


def test_a_graph_that_cannot_be_made_here_is_left_out_and_a_read_only_cache_still_chooses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(path: Path, doc: object) -> None:  # as a non-root user in the image sees it
        raise PermissionError(13, "Permission denied", str(path))

    def runner_for(name: str) -> Callable[[Sequence[str]], np.ndarray]:
        if name != "fp32":
            raise ModuleNotFoundError("No module named 'optimum'")
        return _runner(0.0, 0.0)

    monkeypatch.setattr("models.calibration.write_json_atomic", read_only)
    precision, reason = auto_precision(tmp_path, 2, runner_for, identity=EPYC, texts=TEXTS[:3])
    assert precision == "fp32" and "int8" not in reason and not (tmp_path / RECORD_FILE).exists()


# --- the fused graphs (made once into the shared export cache, then reused) ---------------


@pytest.mark.parametrize("precision", ["fp32-fused", "int8-fused"])
def test_fused_graphs_are_made_once_with_their_recipe(onnx_dir: Path, encoder: Any, precision: str) -> None:
    import onnx

    graph = graph_file(onnx_dir, precision)
    assert json.loads(graph.with_suffix(".json").read_text()) == recipe(precision)
    mtime = graph.stat().st_mtime_ns
    assert graph_file(onnx_dir, precision) == graph and graph.stat().st_mtime_ns == mtime  # reused
    nodes = onnx.load(graph, load_external_data=False).graph.node
    ops = {n.op_type for n in nodes}
    assert {"Attention", "SkipLayerNormalization"} <= ops
    if precision == "int8-fused":
        assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
        layers = sum(n.op_type == "Attention" for n in nodes)
        assert sum(n.op_type == "MatMul" for n in nodes) == layers  # the FFN down projections stay fp32
    served = Encoder(onnx_dir, prefer_gpu=False, precision=precision)
    texts = list(TEXTS[:16])
    cos = (served.encode(texts) * encoder.encode(texts)).sum(axis=1)
    assert served.precision == precision and served.precision_reason == "set explicitly"
    assert cos.min() >= 0.99, cos.min()
