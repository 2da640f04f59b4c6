"""The command line: every setting has a flag that reaches it, a user's mistake is one line and
exit code 2 (never a traceback), and ``config`` says where each value came from."""

import dataclasses
import json
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from stream.cli import build_parser
from stream.cli_args import settings_from
from stream.config import CHOICES, Settings, describe


def segstream(*argv: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")} | env
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *argv], env=environ, capture_output=True, text=True, timeout=60
    )


def test_the_worker_takes_its_model_and_output_topics_as_flags(capsys):
    topics = {
        "topic_model": "m", "topic_model_updates": "mu", "topic_changes": "c", "topic_membership": "mb",
        "topic_dead_letters": "d",
    }
    argv = ["worker"] + [f"--{name.replace('_', '-')}={value}" for name, value in topics.items()]
    settings = settings_from(build_parser().parse_args(argv))
    assert {name: getattr(settings, name) for name in topics} == topics
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert all(f"(env SEGSTREAM_{name.upper()}, default" in shown for name in topics)


def test_watch_takes_the_topics_it_reads_as_flags():
    settings = settings_from(build_parser().parse_args(["watch", "--topic-changes", "c", "--topic-membership", "mb"]))
    assert (settings.topic_changes, settings.topic_membership) == ("c", "mb")


@pytest.mark.parametrize("command", ["worker", "replay", "load movielens", "watch", "config", "forget u1"])
def test_every_setting_has_a_flag_on_the_commands_that_read_settings(command):
    parser, defaults = build_parser(), Settings()
    for field in dataclasses.fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        value = [] if isinstance(getattr(defaults, field.name), bool) else [CHOICES.get(field.name, ("7",))[-1]]
        assert getattr(parser.parse_args([*command.split(), flag, *value]), field.name) is not None, flag


def test_boolean_settings_are_switches_and_choices_are_checked():
    args = build_parser().parse_args(["worker", "--no-prefer-gpu", "--debug-views", "--encoder-precision", "int8"])
    settings = settings_from(args)
    assert (settings.prefer_gpu, settings.debug_views, settings.encoder_precision) == (False, True, "int8")


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["replay", "--offsets", "garbage"], {}, ["--offsets", "TOPIC:PARTITION:OFFSET"]),
        (["replay", "--offsets", "reviews:x:5"], {}, ["--offsets", "TOPIC:PARTITION:OFFSET"]),
        (["replay", "--offsets", "reviews:0:-1"], {}, ["--offsets", "TOPIC:PARTITION:OFFSET"]),
        (["replay", "--from-timestamp", "yesterday"], {}, ["--from-timestamp", "ISO-8601"]),
        (["worker"], {"SEGSTREAM_K": "abc"}, ["SEGSTREAM_K", "whole number"]),
        (["worker", "--k", "0"], {}, ["SEGSTREAM_K", "--k", ">= 1"]),
        (["worker", "--k", "abc"], {}, ["--k", "int"]),
        (["load", "movielens"], {"SEGSTREAM_SESSION_TIMEOUT_S": "0"}, ["SEGSTREAM_SESSION_TIMEOUT_S", ">= 1"]),
        (["watch", "--broker-wait-s", "-1"], {}, ["SEGSTREAM_BROKER_WAIT_S", ">= 0"]),
        (["worker", "--web-port", "70000"], {}, ["SEGSTREAM_WEB_PORT", "65535"]),
        (["worker"], {"SEGSTREAM_HALF_LIFE_DAYS": "nan"}, ["SEGSTREAM_HALF_LIFE_DAYS", ">= 0.001"]),
        (["worker"], {"SEGSTREAM_PREFER_GPU": "maybe"}, ["SEGSTREAM_PREFER_GPU", "boolean"]),
        (["worker", "--encoder-precision", "fp8"], {}, ["--encoder-precision", "int8"]),
        (["worker", "--model-path", "{empty}"], {}, ["SEGSTREAM_MODEL_PATH", "config.json"]),
        (["replay", "--model-path", "{empty}/missing"], {}, ["SEGSTREAM_MODEL_PATH", "not a folder"]),
        (["worker", "--loglevel", "loud"], {}, ["--loglevel", "debug"]),
        (["broker", "--port", "0"], {}, ["--port", "1..65535"]),
        (["replay", "--publish-to-live"], {}, ["--publish-to-live", "--fresh"]),
        (["config"], {"SEGSTREAM_EARLIEST_EVENT_TIME": "long ago"}, ["SEGSTREAM_EARLIEST_EVENT_TIME", "ISO-8601"]),
        (["model", "export"], {"SEGSTREAM_K": "-3"}, ["SEGSTREAM_K", ">= 1"]),
        (["evaluate", "{file}"], {"SEGSTREAM_MODEL": "e5"}, ["SEGSTREAM_MODEL", "multilingual-e5-small"]),
        (["evaluate", "{file}"], {"SEGSTREAM_K": "0"}, ["SEGSTREAM_K", ">= 1"]),
        (["worker"], {"SEGSTREAM_APP_ID": "../../x"}, ["SEGSTREAM_APP_ID", "--app-id", "'../../x'"]),
        (["worker"], {"SEGSTREAM_STORE": "foo://"}, ["SEGSTREAM_STORE", "rocksdb://, memory://"]),
        (["replay", "--store", "foo://"], {}, ["--store", "rocksdb://"]),
        (["worker", "--data-dir", "{file}/data"], {}, ["SEGSTREAM_DATA_DIR", "--data-dir", "{file}/data", "Not a directory"]),
        (["worker", "--store", "memory://", "--data-dir", "{file}"], {}, ["SEGSTREAM_DATA_DIR", "it is a file"]),
        (["replay", "--fresh", "--app-id", "a" * 229], {}, ["--fresh", "-replay-", "SEGSTREAM_APP_ID", "229"]),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting_and_its_form_and_exit_code_2(tmp_path, argv, env, names):
    (tmp_path / "file").write_text("a file where a folder should be\n")

    def placed(text: str) -> str:
        return text.replace("{empty}", str(tmp_path)).replace("{file}", str(tmp_path / "file"))

    run = segstream(*map(placed, argv), **env)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and run.stdout == "", (run.returncode, run.stdout, run.stderr)
    assert lines[0].startswith("segstream ") and "error" in lines[0] and "Traceback" not in run.stderr
    assert all(placed(name) in lines[0] for name in names), lines[0]


@pytest.mark.parametrize("command", ["worker", "replay"])
def test_a_data_dir_in_use_by_a_live_worker_is_one_line_before_any_broker_is_asked(tmp_path, command):
    from stream.config import load_settings
    from stream.data_dir import claim

    with claim(load_settings(env={}, data_dir=str(tmp_path), app_id="shop", store="rocksdb://")):
        run = segstream(command, "--data-dir", str(tmp_path), "--app-id", "shop", SEGSTREAM_BOOTSTRAP="127.0.0.1:9")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, (run.returncode, run.stderr)
    assert lines[0] == (
        f"segstream {command}: error: SEGSTREAM_DATA_DIR: data dir {tmp_path} is in use by another segstream worker "
        f"(pid {os.getpid()}) of app id 'shop'; give each worker its own SEGSTREAM_DATA_DIR (flag --data-dir)"
    )


def test_version_comes_from_the_package_metadata():
    run = segstream("--version")
    assert (run.returncode, run.stdout.strip()) == (0, f"segstream {version('segstream')}")


def test_config_shows_each_value_with_its_source_and_hides_secrets():
    run = segstream("config", "--app-id", "shop", SEGSTREAM_K="5", SEGSTREAM_HTTP_TOKEN="hunter2")
    assert run.returncode == 0 and "hunter2" not in run.stdout
    lines = {line.split("=", 1)[0]: line for line in run.stdout.splitlines()}
    assert lines["SEGSTREAM_APP_ID"].startswith("SEGSTREAM_APP_ID=shop    # [flag] ")
    assert lines["SEGSTREAM_K"].startswith("SEGSTREAM_K=5    # [env] ")
    assert lines["SEGSTREAM_PARTITIONS"].startswith("SEGSTREAM_PARTITIONS=4    # [default] ")
    assert lines["SEGSTREAM_HTTP_TOKEN"].startswith("SEGSTREAM_HTTP_TOKEN=***    # [env] ")
    assert len(lines) == len(describe())


def test_config_json_is_one_object_of_typed_values():
    run = segstream("config", "--json", "--k", "5", "--no-prefer-gpu")
    rows = json.loads(run.stdout)
    assert list(rows) == [name for name, _, _ in describe()]
    assert rows["SEGSTREAM_K"] == {"value": 5, "default": 8, "source": "flag", "meaning": "number of segments"}
    assert (rows["SEGSTREAM_PREFER_GPU"]["value"], rows["SEGSTREAM_WEB_PORT"]["value"]) == (False, 6066)


def test_a_closed_pipe_is_not_a_traceback():
    run = subprocess.run(
        f"{sys.executable} -m stream.cli config | head -1", shell=True, capture_output=True, text=True, timeout=60
    )
    assert run.stdout.startswith("SEGSTREAM_") and "Traceback" not in run.stderr


def test_faust_worker_options_are_accepted_and_passed_on():
    from stream.cli_args import faust_options

    args = build_parser().parse_args(["worker", "-l", "DEBUG", "--logfile", "/tmp/w.log", "--web-host", "0.0.0.0"])
    assert (args.loglevel, faust_options(args), settings_from(args).web_host) == (
        "debug", ["--logfile", "/tmp/w.log"], "0.0.0.0",
    )


def test_every_log_level_we_accept_is_one_faust_and_python_logging_accept():
    import logging

    from faust.cli.base import LOGLEVELS

    from stream.cli_args import LOG_LEVEL_ALIASES, LOG_LEVELS
    from stream.worker.app import FAUST_LOG_LEVELS

    for spelling in (*LOG_LEVELS, *LOG_LEVEL_ALIASES, "WARN", "Info"):
        level = build_parser().parse_args(["replay", "-l", spelling]).loglevel
        assert isinstance(logging.getLevelName(level.upper()), int), spelling
        assert FAUST_LOG_LEVELS.get(level, level).upper() in LOGLEVELS, spelling


def test_replay_start_flags_are_parsed_once_into_what_plan_offsets_takes():
    parse = build_parser().parse_args
    assert parse(["replay", "--offsets", "reviews:0:5, behaviors:3:0"]).offsets == {("reviews", 0): 5, ("behaviors", 3): 0}
    assert parse(["replay", "--from-timestamp", "2024-01-01T00:00:00Z"]).from_timestamp == 1_704_067_200_000
    assert parse(["replay", "--from-timestamp", "2024-01-01T01:00:00+01:00"]).from_timestamp == 1_704_067_200_000
    assert parse(["replay", "--from-timestamp", "1704067200000"]).from_timestamp == 1_704_067_200_000
