"""Secured Kafka for real. TLS: a broker of its own behind a TLS proxy (tls_proxy.py: mutual
TLS with a CA made here), advertising the proxy, so every client reconnects through it; a
worker, ``segstream load``, ``segstream watch`` and the Subscriber API all go through TLS.
SASL: Tansu 0.6.0 with ``--authentication`` refuses whoever has not authenticated, and no SCRAM
user can be created on it (docs/security.md), so the test is that a refused login and a client
without credentials each end in one clear line and a non-zero exit, soon.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from tls_proxy import Pki, TlsProxy, make_pki

from stream.client import Subscriber
from stream.config import Settings, export_to_env
from stream.security import librdkafka_security
from stream.tools.broker import EmbeddedBroker, free_port


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsProxy, Pki]]:
    folder = tmp_path_factory.mktemp("tls")
    pki, proxy_port = make_pki(folder), free_port()
    broker = EmbeddedBroker(log_path=folder / "broker.log", advertised=f"127.0.0.1:{proxy_port}")
    with broker.running(), TlsProxy(broker.port, pki, port=proxy_port).running() as proxy:
        yield proxy, pki


def segstream(settings: Settings, *args: str, timeout_s: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """A segstream command configured by ``settings`` (and ``env`` on top)."""
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args], capture_output=True, text=True, timeout=timeout_s,
        env={**os.environ, **export_to_env(settings), "HF_HUB_OFFLINE": "1", **env},
    )


def test_worker_load_watch_and_subscriber_through_mutual_tls(tls, settings_for, start_worker):
    proxy, pki = tls
    settings = settings_for(
        bootstrap=proxy.bootstrap, security_protocol="SSL", ssl_cafile=str(pki.ca),
        ssl_certfile=str(pki.client_cert), ssl_keyfile=str(pki.client_key), k=2, seed_users=10, seed_idle_s=2.0,
    )
    worker = start_worker(settings)
    loaded = segstream(settings, "load", "bbc", "--limit", "30")
    assert loaded.returncode == 0, loaded.stderr
    health = worker.wait_until(lambda h: h["counters"]["applied"] >= 30 and h["counters"]["changes"] > 0, 90, "the reviews")
    print(f"\nworker through TLS on {proxy.bootstrap}: applied {health['counters']['applied']}, "
          f"changes {health['counters']['changes']}, model v{health['model']['version']}")

    watched = segstream(settings, "watch", "--from-beginning", "--stop-after-idle", "3")
    snapshot = [line for line in watched.stdout.splitlines() if line.endswith("[snapshot]")]
    assert watched.returncode == 0 and snapshot, watched.stderr
    watched_users = {line.split()[2] for line in snapshot}  # "TS  user ID  PREVIOUS -> SEGMENT ..."
    print(f"segstream watch through TLS: {len(snapshot)} snapshot lines ({len(watched_users)} users), "
          f"first: {snapshot[0].strip()}")

    with Subscriber(
        proxy.bootstrap, topic_changes=settings.topic_changes, topic_membership=settings.topic_membership,
        from_beginning=True, stop_after_idle_s=2.0, config=librdkafka_security(settings),
    ) as subscriber:
        users = {change.user_id for change in subscriber}
    assert watched_users <= users <= {f"bbc-{n}" for n in range(30)}
    print(f"Subscriber(config=...) through TLS: {len(users)} users' segments")


def test_an_untrusted_broker_certificate_is_one_line_and_exit_1(tls, settings_for):
    proxy, pki = tls
    settings = settings_for(
        bootstrap=proxy.bootstrap, security_protocol="SSL", ssl_cafile=str(pki.ca),
        ssl_certfile=str(pki.client_cert), ssl_keyfile=str(pki.client_key),
    )
    for command in (["watch"], ["load", "bbc", "--limit", "1"], ["worker"]):
        started = time.monotonic()
        done = segstream(settings, *command, timeout_s=60, SEGSTREAM_SSL_CAFILE=str(pki.other_ca))
        took = time.monotonic() - started
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 1 and took < 15, (command, took, done.stderr)
        assert last.startswith(f"segstream: Kafka at {proxy.bootstrap} refused the connection: ") and "certificate verify failed" in last
        print(f"segstream {command[0]} with another CA: exit {done.returncode} after {took:.1f} s: {last}")


@pytest.fixture(scope="module")
def authenticating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("sasl") / "broker.log"
    with EmbeddedBroker(log_path=log, authentication=True).running() as broker:
        yield broker


def test_sasl_refused_or_missing_is_one_line_and_exit_1(authenticating, settings_for):
    # settings_for creates topics on the shared plaintext broker: this one refuses that.
    settings = Settings(bootstrap=authenticating.bootstrap, broker_wait_s=4.0)
    scram = {"SEGSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SEGSTREAM_SASL_MECHANISM": "SCRAM-SHA-256",
             "SEGSTREAM_SASL_USERNAME": "segstream", "SEGSTREAM_SASL_PASSWORD": "wrong"}
    for env, expected in (
        (scram, f"segstream: Kafka at {authenticating.bootstrap} refused the connection: "),
        ({}, f"segstream: Kafka at {authenticating.bootstrap} accepts connections but closes them"),
    ):
        started = time.monotonic()
        done = segstream(settings, "watch", timeout_s=60, **env)
        took = time.monotonic() - started
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 1 and took < 15 and last.startswith(expected), (took, done.stderr)
        print(f"segstream watch, {env.get('SEGSTREAM_SECURITY_PROTOCOL', 'PLAINTEXT')}: exit 1 after {took:.1f} s: {last}")
