"""Settings: every one documented, read from the environment, checked."""

import dataclasses

import pytest

from models.precision import PRECISIONS
from stream.config import CHOICES, Settings, SettingError, describe, is_secret, load_settings, origins


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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SEGSTREAM_K": "0"}, "SEGSTREAM_K: must be a whole number >= 1, got 0"),
        ({"SEGSTREAM_PARTITIONS": "-2"}, "SEGSTREAM_PARTITIONS: must be a whole number >= 1"),
        ({"SEGSTREAM_SESSION_TIMEOUT_S": "0"}, "SEGSTREAM_SESSION_TIMEOUT_S: must be a number > 0"),
        ({"SEGSTREAM_HYSTERESIS": "-0.1"}, "SEGSTREAM_HYSTERESIS: must be a number >= 0"),
        ({"SEGSTREAM_WEIGHT_CART": "inf"}, "SEGSTREAM_WEIGHT_CART: must be a number >= 0"),
        ({"SEGSTREAM_SWEEP_USERS": "-1"}, "SEGSTREAM_SWEEP_USERS: must be a whole number >= 0"),
        ({"SEGSTREAM_WEB_PORT": "65536"}, "SEGSTREAM_WEB_PORT: must be a port number <= 65535"),
        ({"SEGSTREAM_SEED_USERS": "3"}, "SEGSTREAM_SEED_USERS: must be at least SEGSTREAM_K"),
        ({"SEGSTREAM_BATCH_SIZE": "1.5"}, "SEGSTREAM_BATCH_SIZE: not a whole number: '1.5'"),
        ({"SEGSTREAM_ENCODER_PRECISION": "fp8"}, "SEGSTREAM_ENCODER_PRECISION: unknown value 'fp8'"),
    ],
)
def test_a_value_out_of_range_names_the_setting_and_the_accepted_form(env, message):
    with pytest.raises(SettingError) as error:
        load_settings(env=env)
    assert str(error.value).startswith(message)
    assert error.value.name == next(iter(env)).removeprefix("SEGSTREAM_").lower()


def test_every_numeric_setting_is_checked_whoever_adds_it():
    for field in dataclasses.fields(Settings):
        if isinstance(getattr(Settings(), field.name), bool | str):
            continue
        with pytest.raises(SettingError, match=f"SEGSTREAM_{field.name.upper()}"):
            load_settings(env={}, **{field.name: -1})


def test_origins_say_where_each_value_came_from():
    source = origins(env={"SEGSTREAM_K": "5", "SEGSTREAM_APP_ID": "a"}, app_id="b", partitions=None)
    assert (source["app_id"], source["k"], source["partitions"]) == ("flag", "env", "default")


def test_tokens_passwords_and_salts_are_secrets():
    assert is_secret("http_token") and is_secret("user_id_salt") and not is_secret("k")
