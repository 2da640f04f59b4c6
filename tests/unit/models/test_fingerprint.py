"""The encoder's fingerprint: stable for the same files, told apart for others, recorded with the
published segmentation."""

from pathlib import Path

from models.clustering import KMeansParams
from models.fingerprint import EncoderFingerprint, fingerprint_files, mismatch
from models.profiles import ProfileParams
from models.segmentation import Segmentation, SegmentationParams

PARAMS = SegmentationParams(KMeansParams(k=2, seed_users=2), ProfileParams(2, 86_400.0))
OURS = EncoderFingerprint("0123456789abcdef", "model-1/model.onnx, fp32, 2-d, 256 tokens")
THEIRS = EncoderFingerprint("fedcba9876543210", "model-1/model_quantized.onnx, int8, 2-d, 256 tokens")


def files(tmp_path: Path, graph: bytes, tokenizer: bytes = b"{}") -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "model.onnx").write_bytes(graph)
    (tmp_path / "tokenizer.json").write_bytes(tokenizer)
    return tmp_path / "model.onnx", tmp_path / "tokenizer.json"


def test_the_same_files_give_the_same_digest_and_any_difference_another(tmp_path):
    first = fingerprint_files(*files(tmp_path / "a", b"graph"), 256, "a")
    assert fingerprint_files(*files(tmp_path / "b", b"graph"), 256, "elsewhere").digest == first.digest
    assert fingerprint_files(*files(tmp_path / "c", b"graph!"), 256, "a").digest != first.digest
    assert fingerprint_files(*files(tmp_path / "d", b"graph", b"{ }"), 256, "a").digest != first.digest
    assert fingerprint_files(*files(tmp_path / "a", b"graph"), 128, "a").digest != first.digest


def test_a_mismatch_names_both_encoders_and_an_unknown_one_is_no_mismatch():
    why = mismatch(THEIRS, OURS)
    assert THEIRS.digest in why and OURS.digest in why and "int8" in why and "fp32" in why
    assert mismatch(OURS, EncoderFingerprint(OURS.digest, "another name")) == ""
    assert mismatch(None, OURS) == ""


def test_a_snapshot_records_its_encoder_and_an_old_one_reads_as_unknown():
    made = Segmentation.new(PARAMS, 2, OURS)
    assert Segmentation.from_bytes(made.to_bytes(), PARAMS, 2).encoder == OURS
    old = Segmentation.new(PARAMS, 2).to_bytes().replace(b',"encoder":null', b"")
    assert b"encoder" not in old and Segmentation.from_bytes(old, PARAMS, 2).encoder is None
