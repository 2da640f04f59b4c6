"""Settings: every one documented, read from the environment, checked."""

import pytest

from models.precision import PRECISIONS
from stream.config import CHOICES, describe, load_settings


def test_every_setting_is_documented_and_read_from_the_environment():
    rows = describe()
    assert all(meaning for _, _, meaning in rows)
    settings = load_settings(env={"SEGSTREAM_K": "5", "SEGSTREAM_PREFER_GPU": "false", "SEGSTREAM_BATCH_WAIT_S": "0.5"})
    assert (settings.k, settings.prefer_gpu, settings.batch_wait_s) == (5, False, 0.5)
    with pytest.raises(ValueError, match="SEGSTREAM_K"):
        load_settings(env={"SEGSTREAM_K": "many"})


def test_the_accepted_precisions_are_the_ones_the_encoder_serves():
    assert CHOICES["encoder_precision"] == PRECISIONS


def test_readme_lists_every_setting_with_its_default_and_meaning():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    home = str(Path.home())
    for name, default, meaning in describe():
        assert f"| `{name}` | `{default.replace(home, '~')}` | {meaning} |" in readme, name
