"""The security settings reach every Kafka client segstream opens (no broker here: the clients
are captured as they are made; tests/integration/test_security.py connects for real)."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path
from typing import Any

import certifi
import pytest
from confluent_kafka import KafkaError
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream import kafka
from stream.client import Subscriber, subscribe
from stream.config import SettingError, Settings, load_settings
from stream.security import aiokafka_security, librdkafka_security
from stream.worker import consumer_patch
from stream.worker.app import broker_credentials, new_faust_app

STREAM = Path(__file__).resolve().parents[3] / "stream"
SASL_SSL = dict(
    bootstrap="kafka.example:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
    sasl_username="segstream", sasl_password="s3cret", ssl_cafile=certifi.where(),
)
LIBRDKAFKA_SASL_SSL = {
    "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "segstream",
    "sasl.password": "s3cret", "ssl.ca.location": certifi.where(),
}


def secured(**values: Any) -> Settings:
    return load_settings(env={}, **{**SASL_SSL, **values})


def test_librdkafka_properties_for_each_protocol(tmp_path):
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("x"), key.write_text("x")
    assert librdkafka_security(load_settings(env={})) == {}
    assert librdkafka_security(secured()) == LIBRDKAFKA_SASL_SSL
    assert librdkafka_security(secured(security_protocol="SASL_PLAINTEXT", ssl_cafile="")) == {
        k: v for k, v in LIBRDKAFKA_SASL_SSL.items() if not k.startswith("ssl.")
    } | {"security.protocol": "SASL_PLAINTEXT"}
    tls = secured(security_protocol="SSL", ssl_certfile=str(cert), ssl_keyfile=str(key), ssl_key_password="k")
    assert librdkafka_security(tls) == {
        "security.protocol": "SSL", "ssl.ca.location": certifi.where(), "ssl.certificate.location": str(cert),
        "ssl.key.location": str(key), "ssl.key.password": "k",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"security_protocol": "TLS"}, "SEGSTREAM_SECURITY_PROTOCOL: unknown value 'TLS': expected one of PLAINTEXT, SSL"),
        ({"sasl_mechanism": "GSSAPI"}, "SEGSTREAM_SASL_MECHANISM: unknown value 'GSSAPI'"),
        ({"sasl_password": ""}, "SEGSTREAM_SASL_USERNAME: SASL (SASL_SSL) needs SEGSTREAM_SASL_USERNAME and SEGSTREAM_SASL_PASSWORD"),
        ({"ssl_cafile": "/nowhere/ca.pem"}, "SEGSTREAM_SSL_CAFILE: no such file: /nowhere/ca.pem"),
        ({"ssl_certfile": certifi.where()}, "SEGSTREAM_SSL_KEYFILE: a client certificate needs its key"),
        ({"security_protocol": "SASL_PLAINTEXT"}, "SEGSTREAM_SSL_CAFILE: is for SSL or SASL_SSL; SEGSTREAM_SECURITY_PROTOCOL is SASL_PLAINTEXT"),
    ],
)
def test_incomplete_security_settings_are_refused_at_start(values, message):
    with pytest.raises(SettingError) as refused:
        secured(**values)
    assert str(refused.value).startswith(message)


def test_confluent_kafka_factories_pass_them(monkeypatch):
    made: list[dict[str, Any]] = []
    for name in ("Producer", "Consumer", "AdminClient"):
        monkeypatch.setattr(kafka, name, made.append)
    cluster = kafka.cluster_config(secured())
    kafka.producer(cluster)
    kafka.consumer(cluster, "group", **{"enable.auto.commit": False})
    kafka.admin(cluster, log_level=0)
    assert len(made) == 3
    for config in made:
        assert config["bootstrap.servers"] == "kafka.example:9093"
        assert LIBRDKAFKA_SASL_SSL.items() <= config.items()


def test_aiokafka_readers_and_faust_get_the_same(monkeypatch):
    settings = secured()
    expected = aiokafka_security(settings)
    assert expected["security_protocol"] == "SASL_SSL" and isinstance(expected["ssl_context"], ssl.SSLContext)
    assert expected["ssl_context"].verify_mode == ssl.CERT_REQUIRED and expected["ssl_context"].check_hostname

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(consumer_patch, "AIOKafkaConsumer", lambda **kwargs: made.append(kwargs))
    consumer_patch.own_reader(settings)
    faust_auth = credentials_to_aiokafka_auth(new_faust_app(settings).conf.broker_credentials)
    for kwargs in (made[0], faust_auth):
        assert {k: kwargs.get(k) for k in expected if k != "ssl_context"} == {
            k: v for k, v in expected.items() if k != "ssl_context"
        }
        assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert made[0]["bootstrap_servers"] == "kafka.example:9093"
    assert broker_credentials(load_settings(env={})) is None
    assert credentials_to_aiokafka_auth(broker_credentials(secured(security_protocol="SSL")))["security_protocol"] == "SSL"


class Made(Exception):
    """Stops a Subscriber right after it made its consumer."""


def test_subscriber_takes_extra_consumer_properties_and_the_security_settings(monkeypatch):
    made: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def consumer(cluster: dict[str, Any], group_id: str, **own: Any) -> None:
        made.append((dict(cluster), own))
        raise Made

    monkeypatch.setattr("stream.client.consumer", consumer)
    with pytest.raises(Made):
        Subscriber("b:9092", config={"security.protocol": "SSL", "fetch.min.bytes": 1, "enable.auto.commit": True})
    cluster, own = made[-1]
    assert cluster == {"bootstrap.servers": "b:9092", "security.protocol": "SSL", "fetch.min.bytes": 1, "enable.auto.commit": True}
    assert own["enable.auto.commit"] is False  # its own reading wins over the caller's
    with pytest.raises(Made):
        subscribe(secured(), config={"client.id": "dashboard"})
    cluster, _ = made[-1]
    assert cluster == {"bootstrap.servers": "kafka.example:9093", **LIBRDKAFKA_SASL_SSL, "client.id": "dashboard"}


# Where the Kafka clients are constructed: nowhere else in stream/.
FACTORIES = {
    ("kafka.py", "producer"), ("kafka.py", "consumer"), ("kafka.py", "admin"),
    ("worker/consumer_patch.py", "own_reader"), ("worker/app.py", "new_faust_app"),
}
CONSTRUCTORS = {"Producer", "Consumer", "AdminClient", "AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaClient", "App"}
# Functions whose first argument says which cluster to reach, and how.
TAKE_A_CLUSTER = {
    "producer", "consumer", "admin", "wait_for_broker", "read_until_quiet", "confirmed_end_offsets",
    "read_last_value", "BrokerWatch", "adapt_faust_consumer", "final_memberships",
}


def calls(tree: ast.AST) -> list[tuple[str, ast.Call, str]]:
    """(called name, call, enclosing function) for every call in ``tree``."""
    found = []
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        for node in ast.walk(func):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                found.append((name, node, func.name))
    return found


def test_every_client_is_made_by_a_factory_from_a_cluster_config():
    constructed, unsecured = set(), []
    for path in STREAM.rglob("*.py"):
        source = path.relative_to(STREAM).as_posix()
        for name, call, function in calls(ast.parse(path.read_text())):
            if name in CONSTRUCTORS:
                constructed.add((source, function))
            if name in TAKE_A_CLUSTER and call.args:
                first = ast.unparse(call.args[0])
                if not (first.startswith("cluster_config(") or first.endswith("cluster")):
                    unsecured.append(f"{source}: {function}: {ast.unparse(call)}")
    assert constructed == FACTORIES
    assert not unsecured


def test_a_broker_that_hangs_up_is_told_apart_from_none():
    down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
    refused = KafkaError(KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:1 failed: Connection refused")
    cluster = {"bootstrap.servers": "127.0.0.1:1"}
    assert "accepts connections but closes them (for 10 s): does it require TLS, SASL or a client certificate? " \
           "SEGSTREAM_SECURITY_PROTOCOL is PLAINTEXT" in kafka._no_broker(cluster, 10, [down], down)
    assert "no Kafka broker answered at 127.0.0.1:1 within 10 s (Connect to ipv4#127.0.0.1:1 failed: Connection refused)" \
        in kafka._no_broker(cluster, 10, [refused, down], down)
