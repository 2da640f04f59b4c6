"""The command line: every flag reaches the settings it names, and says so in the help."""

import pytest

from stream.cli import _settings, build_parser


def test_the_worker_takes_its_model_and_output_topics_as_flags(capsys):
    topics = {
        "topic_model": "m", "topic_model_updates": "mu", "topic_changes": "c", "topic_membership": "mb",
        "topic_dead_letters": "d",
    }
    argv = ["worker"] + [f"--{name.replace('_', '-')}={value}" for name, value in topics.items()]
    settings = _settings(build_parser().parse_args(argv))
    assert {name: getattr(settings, name) for name in topics} == topics
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert all(f"(env SEGSTREAM_{name.upper()}, default" in shown for name in topics)


def test_watch_takes_the_topics_it_reads_as_flags():
    settings = _settings(build_parser().parse_args(["watch", "--topic-changes", "c", "--topic-membership", "mb"]))
    assert (settings.topic_changes, settings.topic_membership) == ("c", "mb")
