"""Run a worker as a child process and talk to its HTTP API (used by the demo and the tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from stream.config import Settings, export_to_env

T = TypeVar("T")


def eventually(probe: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 15.0, every_s: float = 0.2) -> T:
    """``probe()`` again until ``ok`` accepts its result, or time is up: the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


class WorkerProcess:
    """``segstream worker`` in a subprocess configured by ``settings``, logging to a file."""

    def __init__(self, settings: Settings, log_path: Path, command: Sequence[str] = ("worker",)) -> None:
        """``command``: the segstream sub-command and its flags (``replay --fresh``, say)."""
        self.settings = settings
        self.log_path = log_path
        self.command = list(command)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The worker's process id (for sampling its memory, say)."""
        if self.process is None:
            raise RuntimeError("the worker was not started")
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self, timeout_s: float = 120.0) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **export_to_env(self.settings), "HF_HUB_OFFLINE": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", *self.command, "--loglevel", "info"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.wait_until(lambda h: bool(h) and h["ready"], timeout_s, "the worker to be ready")
        return self

    def get(self, path: str, method: str = "GET") -> tuple[int, Any]:
        """(status, JSON body) of a request, with the worker's bearer token when it has one."""
        headers = {"Authorization": f"Bearer {self.settings.http_token}"} if self.settings.http_token else {}
        request = urllib.request.Request(self.url + path, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body or b"null")
            except json.JSONDecodeError:  # an error page of the web server's own (a 500, say)
                return exc.code, body.decode("utf-8", "replace")

    def delete(self, path: str) -> tuple[int, Any]:
        return self.get(path, method="DELETE")

    def health(self) -> dict[str, Any] | None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log_path}")
        try:
            body = self.get("/healthz")[1]
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            return None
        return body if isinstance(body, dict) else None  # an error page while it starts or stops

    def wait_until(
        self, ready: Callable[[dict[str, Any] | None], bool], timeout_s: float, what: str
    ) -> dict[str, Any] | None:
        health = eventually(self.health, ready, timeout_s)
        if not ready(health):
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}; last health {health}; log {self.log_path}")
        return health

    def settled(self, quiet_s: float, timeout_s: float) -> dict[str, Any]:
        """/healthz once the model version and the sweeps have held still for ``quiet_s``: the
        owner has worked off the workers' updates and the last version has been swept."""

        def progress(h: dict[str, Any]) -> tuple[int, int, int]:
            return h["model"]["version"], h["counters"]["swept"], h["counters"]["changes"]

        last: tuple[int, int, int] | None = None
        since = time.monotonic()
        deadline = since + timeout_s
        while True:
            health = self.health()
            if health is None:
                raise RuntimeError(f"the worker stopped answering /healthz; see {self.log_path}")
            now = time.monotonic()
            if progress(health) != last:
                last, since = progress(health), now
            elif now - since >= quiet_s or now > deadline:
                return health
            time.sleep(0.25)

    def stop(self, kill: bool = False, timeout_s: float = 30.0) -> None:
        """SIGTERM (graceful: commit, flush, publish the model) or SIGKILL (a crash)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
