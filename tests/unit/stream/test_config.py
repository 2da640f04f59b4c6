"""Settings: every one documented, read from the environment, checked."""

import dataclasses

import pytest

from models.precision import PRECISIONS
from stream.config import (
    CHOICES, LONGEST_APP_ID, LONGEST_TOPIC, LOWER_BOUNDS, UPPER_BOUNDS, WEIGHTS, Settings, SettingError, describe,
    is_secret, load_settings, origins,
)


def test_every_setting_is_documented_and_read_from_the_environment():
    rows = describe()
    assert all(meaning for _, _, meaning in rows)
    settings = load_settings(env={"SEGSTREAM_K": "5", "SEGSTREAM_PREFER_GPU": "false", "SEGSTREAM_BATCH_WAIT_S": "0.5"})
    assert (settings.k, settings.prefer_gpu, settings.batch_wait_s) == (5, False, 0.5)
    with pytest.raises(ValueError, match="SEGSTREAM_K"):
        load_settings(env={"SEGSTREAM_K": "many"})


def test_the_accepted_precisions_are_the_ones_the_encoder_serves():
    assert CHOICES["encoder_precision"] == PRECISIONS


def test_the_model_names_accepted_are_the_registrys():
    from models.registry import ENCODERS

    assert CHOICES["model"] == tuple(ENCODERS)


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
        ({"SEGSTREAM_SESSION_TIMEOUT_S": "0"}, "SEGSTREAM_SESSION_TIMEOUT_S: must be a number >= 1 and <= 90"),
        ({"SEGSTREAM_HYSTERESIS": "-0.1"}, "SEGSTREAM_HYSTERESIS: must be a number >= 0"),
        ({"SEGSTREAM_WEIGHT_CART": "inf"}, "SEGSTREAM_WEIGHT_CART: must be a number >= 1e-06 and <= 1,000,000"),
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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # A weight that overflows float32 or leaves no vector: no user would have one, no model seed.
        ({"SEGSTREAM_WEIGHT_PURCHASE": "1e308"}, "SEGSTREAM_WEIGHT_PURCHASE: must be a number >= 1e-06 and <= 1,000,000, got 1e+308"),
        ({"SEGSTREAM_WEIGHT_PURCHASE": "0"}, "SEGSTREAM_WEIGHT_PURCHASE: must be a number >= 1e-06 and <= 1,000,000, got 0.0"),
        ({"SEGSTREAM_WEIGHT_VIEW": "1e-7"}, "SEGSTREAM_WEIGHT_VIEW: must be a number >= 1e-06"),
        ({"SEGSTREAM_WEIGHT_CLICK": "2e6"}, "SEGSTREAM_WEIGHT_CLICK: must be a number >= 1e-06 and <= 1,000,000"),
        ({"SEGSTREAM_WEIGHT_REVIEW": "0"}, "SEGSTREAM_WEIGHT_REVIEW: must be a number >= 1e-06"),
        # Decay and dedup horizons: a profile rescaling at every event, an infinite half-life.
        ({"SEGSTREAM_HALF_LIFE_DAYS": "1e-9"}, "SEGSTREAM_HALF_LIFE_DAYS: must be a number >= 0.001 and <= 36,525"),
        ({"SEGSTREAM_HALF_LIFE_DAYS": "1e305"}, "SEGSTREAM_HALF_LIFE_DAYS: must be a number >= 0.001 and <= 36,525"),
        ({"SEGSTREAM_DEDUP_HORIZON_DAYS": "1e-9"}, "SEGSTREAM_DEDUP_HORIZON_DAYS: must be a number >= 0.001"),
        ({"SEGSTREAM_DEDUP_HORIZON_DAYS": "1e6"}, "SEGSTREAM_DEDUP_HORIZON_DAYS: must be a number >= 0.001 and <= 36,525"),
        ({"SEGSTREAM_MAX_FUTURE_S": "1e12"}, "SEGSTREAM_MAX_FUTURE_S: must be at most SEGSTREAM_DEDUP_HORIZON_DAYS in seconds (2,592,000)"),
        ({"SEGSTREAM_MODEL_HALF_LIFE_UPDATES": "0.5"}, "SEGSTREAM_MODEL_HALF_LIFE_UPDATES: must be a number >= 1 and <= 1,000,000,000"),
        ({"SEGSTREAM_MODEL_HALF_LIFE_UPDATES": "1e20"}, "SEGSTREAM_MODEL_HALF_LIFE_UPDATES: must be a number >= 1"),
        # Timeouts Faust or aiokafka refuse, or take to mean something else.
        ({"SEGSTREAM_SESSION_TIMEOUT_S": "1e12"}, "SEGSTREAM_SESSION_TIMEOUT_S: must be a number >= 1 and <= 90, got 1000000000000.0"),
        ({"SEGSTREAM_SESSION_TIMEOUT_S": "0.5"}, "SEGSTREAM_SESSION_TIMEOUT_S: must be a number >= 1 and <= 90"),
        ({"SEGSTREAM_BATCH_WAIT_S": "0"}, "SEGSTREAM_BATCH_WAIT_S: must be a number > 0 and <= 60"),
        ({"SEGSTREAM_BATCH_WAIT_S": "1e6"}, "SEGSTREAM_BATCH_WAIT_S: must be a number > 0 and <= 60"),
        ({"SEGSTREAM_FETCH_MAX_WAIT_MS": "100000"}, "SEGSTREAM_FETCH_MAX_WAIT_MS: must be a whole number >= 0 and <= 30,000"),
        ({"SEGSTREAM_MODEL_PUBLISH_INTERVAL_S": "0"}, "SEGSTREAM_MODEL_PUBLISH_INTERVAL_S: must be a number >= 0.1"),
        # Names: a store segstream is not built for, names that are no topic or folder.
        ({"SEGSTREAM_STORE": "foo://"}, "SEGSTREAM_STORE: unknown value 'foo://': expected one of rocksdb://, memory://"),
        ({"SEGSTREAM_APP_ID": "../../x"}, "SEGSTREAM_APP_ID: '../../x' cannot name Kafka topics and a folder"),
        ({"SEGSTREAM_APP_ID": ".."}, "SEGSTREAM_APP_ID: '..' cannot name Kafka topics and a folder"),
        ({"SEGSTREAM_APP_ID": ""}, "SEGSTREAM_APP_ID: '' cannot name"),
        ({"SEGSTREAM_APP_ID": "a" * 230}, "SEGSTREAM_APP_ID: must be at most 229 characters long, got 230"),
        ({"SEGSTREAM_TOPIC_ITEMS": "shop/items"}, "SEGSTREAM_TOPIC_ITEMS: 'shop/items' cannot name a Kafka topic"),
        ({"SEGSTREAM_TOPIC_CHANGES": "c" * 250}, "SEGSTREAM_TOPIC_CHANGES: must be at most 249 characters long, got 250"),
    ],
)
def test_a_value_that_would_break_the_worker_is_refused_naming_the_setting(env, message):
    with pytest.raises(SettingError) as error:
        load_settings(env=env)
    assert str(error.value).startswith(message)
    assert error.value.name == next(iter(env)).removeprefix("SEGSTREAM_").lower()


def test_the_bounds_themselves_are_accepted():
    highest = {name: UPPER_BOUNDS[name] for name in WEIGHTS + ("half_life_days", "session_timeout_s", "batch_wait_s")}
    lowest = {name: bound for name, (op, bound) in LOWER_BOUNDS.items() if op == ">=" and name in highest}
    for values in (highest, lowest):
        assert load_settings(env={}, **values)
    assert load_settings(env={}, app_id="a" * LONGEST_APP_ID, max_future_s=30 * 86_400.0).max_future_s == 2_592_000


def test_every_topic_named_after_the_longest_app_id_fits_kafka():
    import faust

    from stream.kafka import USERS_TABLE

    settings = load_settings(env={}, app_id="a" * LONGEST_APP_ID)
    app = faust.App(settings.app_id, autodiscover=False)
    named = [
        app._leader_assignor._leader_topic_name, app.Table(USERS_TABLE)._changelog_topic_name(),
        settings.topic_repartition, settings.topic_forget, settings.topic_item_vectors,
    ]
    assert max(len(name) for name in named) == LONGEST_TOPIC


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
