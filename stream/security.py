"""How segstream reaches a secured Kafka cluster: the security settings as librdkafka
properties (the confluent-kafka clients) and as aiokafka arguments (Faust's clients and the
worker's own readers), each made in one place so that every client gets the same."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from stream.config import Settings


def uses_tls(settings: Settings) -> bool:
    return settings.security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(settings: Settings) -> bool:
    return settings.security_protocol.startswith("SASL_")


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """librdkafka properties for ``settings``' security; none for PLAINTEXT."""
    if settings.security_protocol == "PLAINTEXT":
        return {}
    conf = {"security.protocol": settings.security_protocol}
    if uses_sasl(settings):
        conf |= {
            "sasl.mechanisms": settings.sasl_mechanism,
            "sasl.username": settings.sasl_username,
            "sasl.password": settings.sasl_password,
        }
    if uses_tls(settings):
        optional = {
            "ssl.ca.location": settings.ssl_cafile,
            "ssl.certificate.location": settings.ssl_certfile,
            "ssl.key.location": settings.ssl_keyfile,
            "ssl.key.password": settings.ssl_key_password,
        }
        conf |= {name: value for name, value in optional.items() if value}
    return conf


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the broker's certificate and host name against ``ssl_cafile`` (else the
    system's CAs) and presents the client certificate when one is set."""
    return create_ssl_context(
        cafile=settings.ssl_cafile or None,
        certfile=settings.ssl_certfile or None,
        keyfile=settings.ssl_keyfile or None,
        password=settings.ssl_key_password or None,
    )


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of aiokafka's clients for ``settings``' security (Faust's clients get
    the same through stream/worker/app.py's credentials)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if uses_sasl(settings):
        kwargs |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password,
        }
    if uses_tls(settings):
        kwargs["ssl_context"] = tls_context(settings)
    return kwargs
