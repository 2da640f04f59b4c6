"""Sentence encoder served with onnxruntime over a graph :func:`models.export.export_onnx` made.

The graph ends in pooling and L2 normalisation, so a run returns [batch, dim] embeddings;
inputs and output are bound with IO binding. Serving imports only onnxruntime, tokenizers and
numpy: a worker whose cache is already populated starts without torch, onnx or optimum.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from models.calibration import auto_precision
from models.export import EMBEDDING_OUTPUT, METADATA_FILE, export_onnx
from models.fingerprint import EncoderFingerprint, fingerprint_files
from models.precision import graph_file, resolve
from models.readability import Readability

__all__ = ["Encoder", "load_encoder", "physical_cores", "select_providers"]

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 32
# Characters read per token of the model's limit: WordPiece turns a word over 100 characters into
# one [UNK], so no text needs more than this to fill the limit; the rest is never tokenized.
CHARS_PER_TOKEN = 128
GPU_BATCH_SIZE = 256
_ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
# Graph input name -> attribute of tokenizers.Encoding that feeds it.
_INPUT_SOURCES = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def physical_cores() -> int:
    """The CPUs this process should use, as joblib counts them: the physical cores (hyper-threads
    counted once), or fewer when its CPU affinity, its cgroup CPU quota (a container's --cpus, a
    pod's CPU limit, rounded up) or LOKY_MAX_CPU_COUNT allow fewer."""
    return max(1, joblib.cpu_count(only_physical_cores=True))


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
    precision: str
    precision_reason: str

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

        ``precision`` picks the graph (models/precision.py); derived graphs are made on first
        use, and ``auto`` on a CPU is calibrated once per CPU (models/calibration.py); the
        resolved name is :attr:`precision`, why it was chosen :attr:`precision_reason`. ``intra_op_threads`` defaults to the physical cores available to this
        process (:func:`physical_cores`). ``max_length`` overrides the exported token limit;
        it must stay within the model's position embeddings.
        """
        onnx_dir = self._onnx_dir = Path(onnx_dir)
        metadata_file = onnx_dir / METADATA_FILE
        if not metadata_file.is_file():
            raise FileNotFoundError(f"{metadata_file} missing: run export_onnx first")
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        self.dim = int(metadata["dim"])
        self.max_length = int(max_length if max_length is not None else metadata["max_length"])
        if self.max_length < 2:
            raise ValueError(f"max_length must leave room for special tokens, got {self.max_length}")
        self.max_chars = self.max_length * CHARS_PER_TOKEN
        self.prefix = str(metadata.get("prefix", ""))  # put in front of every text (e5: "query: ")

        providers = select_providers(ort.get_available_providers(), prefer_gpu)
        on_gpu = providers[0] == "CUDAExecutionProvider"
        self.precision = resolve(precision, on_gpu)
        self.precision_reason = "fp16 on CUDA" if precision == "auto" else "set explicitly"
        self.intra_op_threads = intra_op_threads if intra_op_threads else physical_cores()
        if self.precision == "auto":
            self.precision, self.precision_reason = auto_precision(onnx_dir, self.intra_op_threads, self._runner_for)
        options = ort.SessionOptions()
        # One request at a time through a chain of ops: parallelism is within each op
        # (intra-op), one thread per physical core; an inter-op pool would only compete.
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        self._graph = graph_file(onnx_dir, self.precision)
        self._session = ort.InferenceSession(str(self._graph), sess_options=options, providers=providers)
        self.providers = self._session.get_providers()
        log.info("encoder precision %s (%s): %s", self.precision, self._graph.name, self.precision_reason)
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
        self._tokenizer_file = onnx_dir / "tokenizer.json"
        self._tokenizer = Tokenizer.from_file(str(self._tokenizer_file))
        self._tokenizer.enable_truncation(max_length=self.max_length)
        self._unknown_id = unknown_token_id(self._tokenizer_file)
        self._prefix_tokens = len(self._tokenizer.encode(self.prefix, add_special_tokens=False).ids) if self.prefix else 0
        self.readability = Readability()  # unknown tokens per text (models/readability.py)
        # tokenizer.json may pin fixed-length padding (MiniLM's says 128); pad to the
        # batch's longest instead, keeping its pad token, on the right so CLS is row 0.
        pad = self._tokenizer.padding or {}
        self._tokenizer.enable_padding(
            direction="right",
            pad_id=pad.get("pad_id", 0),
            pad_type_id=pad.get("pad_type_id", 0),
            pad_token=pad.get("pad_token", "[PAD]"),
        )

    def _runner_for(self, precision: str) -> Any:
        """The encode function of a CPU encoder like this one in ``precision`` (calibration)."""
        encoder = Encoder(
            self._onnx_dir, prefer_gpu=False, intra_op_threads=self.intra_op_threads, precision=precision
        )
        return encoder.encode

    @cached_property
    def fingerprint(self) -> EncoderFingerprint:
        """What a published model records of this encoder (models/fingerprint.py); computed on
        first use, as only the worker needs it."""
        name = (
            f"{self._graph.parent.name}/{self._graph.name}, {self.precision}, {self.dim}-d, "
            f"{self.max_length} tokens"
        )
        return fingerprint_files(self._graph, self._tokenizer_file, self.max_length, name, self.prefix)

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
        """The graph's inputs for one batch, padded to its longest text (each text read up to
        ``max_chars``, after the model's prefix: the model sees at most ``max_length`` tokens)."""
        encodings = self._tokenizer.encode_batch([self.prefix + text[: self.max_chars] for text in texts])
        self.readability.observe(
            (max(0, e.special_tokens_mask.count(0) - self._prefix_tokens), e.ids.count(self._unknown_id)) for e in encodings
        )
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


def unknown_token_id(tokenizer_file: Path) -> int | None:
    """The id of the tokenizer's unknown token (WordPiece names it, Unigram numbers it)."""
    model = json.loads(tokenizer_file.read_text(encoding="utf-8")).get("model", {})
    if model.get("unk_id") is not None:
        return int(model["unk_id"])
    token = model.get("unk_token")
    vocab = model.get("vocab")
    return int(vocab[token]) if token and isinstance(vocab, dict) and token in vocab else None


def load_encoder(model_path: Path, cache_dir: Path, **kwargs: Any) -> Encoder:
    """Export ``model_path`` into ``cache_dir`` unless already there, then load it.

    ``kwargs`` go to :class:`Encoder` (prefer_gpu, intra_op_threads, max_length, precision).
    """
    return Encoder(export_onnx(model_path, cache_dir), **kwargs)
