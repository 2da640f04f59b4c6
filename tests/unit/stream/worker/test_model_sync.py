"""A worker refuses a published model another encoder made, and takes an old one that does not say."""

import logging

import pytest

from models.fingerprint import EncoderFingerprint
from models.segmentation import Segmentation
from stream.config import load_settings
from stream.factories import segmentation_params
from stream.worker.model_sync import ForeignModel, check_encoder

PARAMS = segmentation_params(load_settings(env={}, k=2, seed_users=2))
OURS = EncoderFingerprint("0123456789abcdef", "model-1/model.onnx, fp32, 2-d, 256 tokens")
THEIRS = EncoderFingerprint("fedcba9876543210", "model-1/model_quantized.onnx, int8, 2-d, 256 tokens")


def test_a_model_another_encoder_made_is_refused_with_one_line_naming_both():
    with pytest.raises(ForeignModel) as refused:
        check_encoder(Segmentation.new(PARAMS, 2, THEIRS), OURS, "shop-model")
    line = str(refused.value)
    assert isinstance(refused.value, SystemExit) and refused.value.code == line  # exits non-zero, no traceback
    assert line.startswith("segstream worker: the model on 'shop-model' was made with encoder fedcba9876543210 (")
    assert "this worker's encoder is 0123456789abcdef (" in line and "\n" not in line
    assert refused.value.reason in line


def test_a_model_that_does_not_record_its_encoder_is_taken_with_a_warning_and_then_records_ours(caplog):
    old = Segmentation.new(PARAMS, 2)
    with caplog.at_level(logging.WARNING, logger="segstream"):
        check_encoder(old, OURS, "shop-model")
    assert old.encoder == OURS
    assert "does not record its encoder" in caplog.text and OURS.digest in caplog.text


def test_the_same_encoder_passes_silently(caplog):
    with caplog.at_level(logging.WARNING, logger="segstream"):
        check_encoder(Segmentation.new(PARAMS, 2, OURS), OURS, "shop-model")
    assert caplog.text == ""
