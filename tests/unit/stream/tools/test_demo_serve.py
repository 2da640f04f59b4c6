"""``segstream demo --serve``: after the summary the worker stays up for the live page until Ctrl-C."""

from types import SimpleNamespace

from stream.cli import build_parser
from stream.tools import demo


class Running:
    """A worker process still running (poll: None) for ``polls`` polls, then exited."""

    def __init__(self, polls: int) -> None:
        self.polls = polls

    def poll(self) -> int | None:
        self.polls -= 1
        return None if self.polls >= 0 else 0


def test_serve_prints_the_page_address_and_returns_on_ctrl_c(monkeypatch, capsys):
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    stopped = []
    monkeypatch.setattr(demo.time, "sleep", interrupted)
    worker = SimpleNamespace(url="http://127.0.0.1:6066", process=Running(polls=5), stop=lambda kill: stopped.append(kill))
    demo.serve_until_interrupted(worker)
    out = capsys.readouterr().out
    assert "live page: http://127.0.0.1:6066/ " in out and "Ctrl-C" in out and "stopping" in out
    assert stopped == [True]  # the broker got Ctrl-C too: no graceful wait for it


def test_serve_returns_when_the_worker_exits_by_itself(monkeypatch):
    monkeypatch.setattr(demo.time, "sleep", lambda seconds: None)
    worker = SimpleNamespace(url="http://127.0.0.1:6066", process=Running(polls=3))
    demo.serve_until_interrupted(worker)
    assert worker.process.polls < 0


def test_the_demo_takes_serve_as_a_flag():
    assert build_parser().parse_args(["demo", "--serve"]).serve
    assert not build_parser().parse_args(["demo"]).serve
