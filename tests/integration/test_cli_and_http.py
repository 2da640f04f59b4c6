"""The command line and the HTTP API meet a user's mistakes with one clear line or a 4xx: no
broker, a taken port, bad query parameters; Faust's debug pages stay off unless asked for."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stream.tools.broker import free_port

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"

NO_BROKER_COMMANDS = [["load", "movielens"], ["watch"], ["replay"], ["worker"]]


def own_env(**env: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}, **env}


def test_no_broker_is_one_line_and_a_non_zero_exit_within_15_s_for_every_command(tmp_path):
    env = own_env(SEGSTREAM_BOOTSTRAP=f"127.0.0.1:{free_port()}", SEGSTREAM_DATA_DIR=str(tmp_path))  # default wait, 10 s
    for argv in NO_BROKER_COMMANDS:  # one at a time: each gets the time it would have alone
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "stream.cli", *argv], env=env, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
        lines = (run.stdout + run.stderr).strip().splitlines()
        assert run.returncode != 0 and elapsed < 15, (argv, run.returncode, elapsed)
        assert len(lines) == 1 and "no Kafka broker answered at 127.0.0.1:" in lines[0], (argv, lines)


def test_the_broker_on_a_taken_port_says_so_and_exits_non_zero():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "stream.cli", "broker", "--port", str(port)],
            env=own_env(), capture_output=True, text=True, timeout=30,
        )
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and run.stdout == "", (run.returncode, run.stdout)
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0] and "--port" in lines[0], lines


def test_http_mistakes_are_a_4xx_with_a_message_and_faust_debug_pages_are_off(settings_for, start_worker, tmp_path):
    faust_log = tmp_path / "faust.log"  # Faust's own --logfile option, passed on by segstream worker
    worker = start_worker(settings_for(k=2, seed_users=2), ("worker", "--logfile", str(faust_log)))
    assert worker.get("/segments/1?top=abc") == (400, {"error": "top must be a whole number from 1 to 1000, got 'abc'"})
    assert worker.get("/segments/1?top=0")[0] == 400
    assert worker.get("/segments/1?top=3")[0] == 200
    assert worker.get("/segments/x") == (404, {"error": "no segment 'x'; ids are 0..1"})
    assert worker.get("/users/u1/recommendations?k=many") == (
        400, {"error": "k must be a whole number from 1 to 100, got 'many'"},
    )
    for path in ("/table/users/u1/", "/router/", "/graph/"):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(worker.url + path, timeout=5)
        assert error.value.code == 404, path
    assert "[^Worker]: Ready" in faust_log.read_text()
    assert healthcheck(worker.settings.web_port).returncode == 0
    assert healthcheck(free_port()).returncode != 0


def healthcheck(port: int) -> subprocess.CompletedProcess:
    """The Dockerfile's HEALTHCHECK command, run here against ``port``."""
    line = next(line for line in DOCKERFILE.read_text().splitlines() if line.strip().startswith("CMD [\"python\""))
    command = json.loads(line.strip().removeprefix("CMD "))
    return subprocess.run(
        [sys.executable, *command[1:]], env=own_env(SEGSTREAM_WEB_PORT=str(port)), capture_output=True, timeout=30,
    )
