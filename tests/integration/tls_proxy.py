"""TLS in front of the embedded broker, for the tests: Tansu 0.6.0 serves no TLS itself.

``make_pki`` makes a test CA with the ``openssl`` command (the ``cryptography`` package is not
in the venv): a server certificate for 127.0.0.1 / localhost, a client certificate (the proxy
asks for one: mutual TLS), and a second CA that signed neither. ``TlsProxy`` accepts TLS on a
port of its own and forwards the bytes to the broker's plaintext port; a broker started with
the proxy's address as its advertised listener sends every client back through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stream.tools.broker import free_port

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl(
        "req", "-x509", *_EC, "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN=segstream test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )
    return cert, key


def _signed(folder: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (folder / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext"))
    ext.write_text(extensions + "\nauthorityKeyIdentifier=keyid\nbasicConstraints=CA:FALSE\n")
    _openssl("req", *_EC, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
             "-days", "2", "-extfile", ext)
    return cert, key


def make_pki(folder: Path) -> Pki:
    ca = _ca(folder, "ca")
    server = _signed(folder, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
    client = _signed(folder, "client", ca, "extendedKeyUsage=clientAuth")
    return Pki(ca[0], *server, *client, other_ca=_ca(folder, "other-ca")[0])


class TlsProxy:
    """TLS on ``port`` (mutual: the client shows a certificate the CA signed), plaintext to
    ``target_port``; runs its own event loop in a thread."""

    def __init__(self, target_port: int, pki: Pki, port: int | None = None) -> None:
        self.port, self.target_port = port or free_port(), target_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.context.verify_mode = ssl.CERT_REQUIRED

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(self._pump(client_r, broker_w), self._pump(broker_r, client_w))
        except asyncio.CancelledError:  # the proxy stops
            client_w.close()
            broker_w.close()

    async def _main(self, started: threading.Event) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        async with await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context):
            started.set()
            await self.stopping.wait()
        # asyncio.run cancels the connections still open

    @contextlib.contextmanager
    def running(self) -> Iterator[TlsProxy]:
        started = threading.Event()
        thread = threading.Thread(target=asyncio.run, args=(self._main(started),), name="tls-proxy", daemon=True)
        thread.start()
        if not started.wait(10):
            raise TimeoutError(f"the TLS proxy did not start on port {self.port}")
        try:
            yield self
        finally:
            self.loop.call_soon_threadsafe(self.stopping.set)
            thread.join(10)
