"""``segstream`` command line: broker, worker, replay, load, watch, segments, demo, evaluate, model export, bench, config."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path

from stream.cli_args import (
    Parser, add_faust_options, add_settings_flags, checked, checked_again, claimed_data_dir, faust_options, overrides,
    port_number, settings_from, usage_error, worker_settings,
)
from stream.config import ENV_PREFIX, HELP, Settings, SettingError, is_secret, origins
from models.registry import ENCODERS
from stream.logs import configure as configure_logs
from stream.tools import stress

def cmd_broker(args: argparse.Namespace) -> int:
    from stream.tools.broker import EmbeddedBroker, port_in_use

    if problem := port_in_use(args.port):
        raise SystemExit(f"segstream broker: cannot listen on 127.0.0.1:{args.port} ({problem.strerror}); pick another --port")
    broker = EmbeddedBroker(port=args.port)
    print(f"Tansu broker on {broker.bootstrap} (memory storage); Ctrl-C stops it", flush=True)
    os.execv(broker.command()[0], broker.command())


def cmd_worker(args: argparse.Namespace) -> int:
    from stream.factories import require_runtime

    require_runtime()  # before stream.worker, whose modules import onnxruntime
    from stream.worker.app import run_worker

    settings = worker_settings(args)
    with claimed_data_dir(args, settings):
        configure_logs(args.loglevel, settings.log_format)
        return run_worker(settings, args.loglevel, faust_options=faust_options(args))


def cmd_replay(args: argparse.Namespace) -> int:
    from stream.factories import require_runtime

    require_runtime()
    from stream.core.replay_tracker import ReplayTracker
    from stream.kafka import cluster_config, ensure_topics, wait_for_broker
    from stream.replay import catalogue_to_read, fresh_settings, live_instructions, plan_offsets
    from stream.worker.app import run_worker

    if args.publish_to_live and not args.fresh:
        usage_error(args, "--publish-to-live goes with --fresh (a replay on top of the current state writes to the live topics)")
    settings = worker_settings(args)
    configure_logs(args.loglevel, settings.log_format)
    if args.fresh:
        settings = fresh_settings(settings, f"{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}", args.publish_to_live)
        settings = checked_again(args, settings, f"--fresh names the replay's app id {settings.app_id!r}")
    with claimed_data_dir(args, settings):
        wait_for_broker(cluster_config(settings), settings.broker_wait_s)
        ensure_topics(settings)
        start, until = plan_offsets(settings, args.from_timestamp, args.offsets or None)
        replay = ReplayTracker(
            start, until, catalogue_to_read(settings),
            suppress=args.final_membership_only, rebuild="canonical" if args.fresh else "matched",
        )
        print(_replay_banner(settings, replay.total, args.fresh, args.publish_to_live), flush=True)
        if args.fresh:
            print("\n".join(live_instructions(settings)), flush=True)
        return run_worker(settings, args.loglevel, replay, faust_options(args))


def _replay_banner(settings: Settings, events: int, fresh: bool, to_live: bool) -> str:
    """What the replay reads into and where it writes, in one line."""
    into = "fresh tables" if fresh else "its current state"
    where = "the live topics (--publish-to-live)" if to_live else "its own topics" if fresh else "the live topics"
    return (
        f"replaying {events:,} events into app id {settings.app_id!r} ({into}; model topic {settings.topic_model!r}); "
        f"change events to {where} {settings.topic_changes!r} and {settings.topic_membership!r}, "
        f"dead letters to {settings.topic_dead_letters!r}"
    )


def _offsets(text: str) -> dict[tuple[str, int], int]:
    from stream.replay import parse_offsets

    return parse_offsets(text)


def _epoch_ms(text: str) -> int:
    """Milliseconds since the epoch, or an ISO-8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp() * 1000)


def cmd_load(args: argparse.Namespace) -> int:
    from stream.tools.load import load

    wait_s = 0.0 if args.no_wait else args.wait_timeout
    return load(settings_from(args), args.dataset, args.limit, args.skip_items, wait_s)


def cmd_watch(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from itertools import islice

    from stream.client import subscribe
    from stream.kafka import cluster_config, wait_for_broker

    settings = settings_from(args)
    configure_logs("warning", settings.log_format)
    wait_for_broker(cluster_config(settings), settings.broker_wait_s)
    try:
        subscriber = subscribe(
            settings, group_id=args.group, from_beginning=args.from_beginning, segments=args.segment,
            stop_after_idle_s=args.stop_after_idle,
        )
    except LookupError as exc:
        raise SystemExit(f"segstream watch: {exc}") from exc
    with subscriber:
        try:
            for change in islice(subscriber, args.limit):
                if args.json:
                    print(json.dumps(asdict(change)), flush=True)
                    continue
                print(
                    f"{change.ts}  user {change.user_id:>8}  {change.previous_segment!s:>4} -> {change.segment!s:<4} "
                    f"({change.reason}, model v{change.model_version}"
                    + ("" if change.distance is None else f", d={change.distance:.3f}") + ")"
                    + ("  [snapshot]" if change.snapshot else ""),
                    flush=True,
                )
        except KeyboardInterrupt:
            pass
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from stream.forget import request_forget
    from stream.kafka import cluster_config, wait_for_broker

    settings = settings_from(args)
    configure_logs("warning", settings.log_format)
    wait_for_broker(cluster_config(settings), settings.broker_wait_s)
    keys = request_forget(settings, args.user_ids)
    print(
        f"{len(keys)} forget requests published on {settings.topic_forget!r}; the worker holding each user "
        f"deletes its row and publishes a 'forgotten' change on {settings.topic_changes!r}",
        flush=True,
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from stream.tools.explain import run

    return run(settings_from(args), args.user_id, args.json)


def cmd_segments(args: argparse.Namespace) -> int:
    from stream.tools.segments import run

    try:
        return run(settings_from(args), args.json, args.segment)
    except LookupError as exc:
        usage_error(args, str(exc))


def cmd_demo(args: argparse.Namespace) -> int:
    from stream.tools.demo import run_demo

    return run_demo(limit=args.limit, k=args.k, keep_logs=Path(args.logs), serve=args.serve)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from stream.tools.evaluate.command import command

    return command(
        args.events, labels=args.labels, heldout=args.heldout, k=args.k, k_range=args.k_range,
        orders=args.orders, seed=args.seed, as_json=args.json,
    )


def cmd_model_export(args: argparse.Namespace) -> int:
    from models.export import export_onnx
    from stream.factories import model_folder_of

    settings = settings_from(args)
    if args.cache:
        settings = dataclasses.replace(settings, model_cache=args.cache)
    print(export_onnx(model_folder_of(settings), Path(settings.model_cache)))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from stream.tools.bench.command import command

    return command(
        n_texts=args.texts, repeats=args.repeats, threads=args.threads, gpu_batch=args.gpu_batch,
        gpu_texts=args.gpu_texts, end_to_end=args.end_to_end,
        reviews=args.reviews, ratings=args.ratings, state=args.state, state_events=args.state_events,
        encoder=not args.no_encoder and args.soak is None, as_json=args.json,
        soak_minutes=args.soak, soak_rate=args.rate, soak_users=args.users,
    )


def cmd_config(args: argparse.Namespace) -> int:
    """Every setting's value, where it came from (flag, env or default) and meaning; secrets masked."""
    settings, defaults, source = settings_from(args), Settings(), origins(**overrides(args))
    rows = {}
    for name in source:
        value, default = getattr(settings, name), getattr(defaults, name)
        if is_secret(name):
            value, default = ("***" if value else ""), ("***" if default else "")
        rows[ENV_PREFIX + name.upper()] = {"value": value, "default": default, "source": source[name], "meaning": HELP[name]}
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for env, row in rows.items():
        print(f"{env}={row['value']}    # [{row['source']}] {row['meaning']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="segstream", description=__doc__)
    parser.add_argument("--version", action="version", version=f"segstream {version('segstream')}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Tansu broker on loopback")
    p.add_argument("--port", type=checked(port_number, "a port number 1..65535"), default=9092)
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("worker", help="run the Faust worker against a broker")
    add_settings_flags(p)
    add_faust_options(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "replay",
        help="re-read the input topics into a fresh or the current state, then go on live (stop this group's workers first)",
    )
    add_settings_flags(p)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="from the first retained record (the default)")
    start.add_argument(
        "--from-timestamp", type=checked(_epoch_ms, "epoch milliseconds or an ISO-8601 time"),
        help="from the first record whose broker timestamp (CreateTime/LogAppendTime, not the event's ts) "
        "is at or after this, checked against the records themselves: epoch milliseconds or ISO-8601 "
        "(UTC unless an offset is given)",
    )
    start.add_argument("--offsets", type=checked(_offsets, "TOPIC:PARTITION:OFFSET[,...]"), help="TOPIC:PARTITION:OFFSET[,...]; other input partitions start at their beginning")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="into new state: a new app id APP_ID-replay-TIMESTAMP-PID (tables) with model and output topics "
        "named after it (the live topics are not written; the command prints how to run live workers on the "
        "result); without it, on top of the current state (events already applied are skipped)",
    )
    p.add_argument(
        "--publish-to-live",
        action="store_true",
        help="with --fresh: write change events, membership and dead letters to the live topics "
        "(--topic-changes, --topic-membership, --topic-dead-letters or their env vars) instead of its own",
    )
    p.add_argument(
        "--final-membership-only",
        action="store_true",
        help="no change events while replaying; once caught up, rebuild the model deterministically and "
        "publish every user's segment to the membership topic",
    )
    add_faust_options(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("load", help="publish a sample data set as contract events")
    p.add_argument("dataset", choices=["movielens", "bbc"], help="movielens: catalogue + ratings; bbc: each article one user's review")
    add_settings_flags(p)
    p.add_argument("--limit", type=int, default=0, help="publish only the first N ratings (articles)")
    p.add_argument("--skip-items", action="store_true", help="do not publish the catalogue")
    p.add_argument(
        "--no-wait", action="store_true",
        help="publish the ratings right after the catalogue, without waiting for a worker to encode it",
    )
    p.add_argument(
        "--wait-timeout", type=float, default=600.0, metavar="SECONDS",
        help="longest wait for a worker to encode the catalogue before the ratings (default 600)",
    )
    p.set_defaults(func=cmd_load)

    p = sub.add_parser(
        "watch",
        help="print segment changes as they arrive",
    )
    add_settings_flags(p)
    p.add_argument(
        "--from-beginning", action="store_true",
        help="first every user's current segment (lines marked snapshot), then the changes",
    )
    p.add_argument("--json", action="store_true", help="one JSON change event per line, with \"snapshot\": true|false")
    p.add_argument(
        "--segment", type=int, action="append", metavar="N",
        help="only users entering or leaving segment N (repeatable)",
    )
    p.add_argument(
        "--group", metavar="ID",
        help="consumer group: commit offsets, so a later watch with the same ID resumes where this one stopped",
    )
    p.add_argument("--limit", type=int, metavar="N", help="exit after N events")
    p.add_argument("--stop-after-idle", type=float, metavar="SECONDS", help="exit once nothing arrived for SECONDS")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser(
        "forget",
        help="erase users: their rows, memberships and model vectors (docs/privacy.md); works without a running worker",
    )
    p.add_argument("user_ids", nargs="+", metavar="USER_ID", help="user ids as producers send them (hashed here when SEGSTREAM_USER_ID_SALT is set)")
    add_settings_flags(p)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("explain", help="why a user is in their segment: nearest centroids, margin, items (asks a worker)")
    p.add_argument("user_id", metavar="USER_ID", help="the user id as producers send it")
    p.add_argument("--json", action="store_true", help="the worker's JSON answer instead of sentences")
    add_settings_flags(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("segments", help="the segments a running worker holds: a table, or one segment's portrait (asks a worker)")
    p.add_argument("--segment", type=int, metavar="N", help="one segment's full portrait: terms, categories, items, actions")
    p.add_argument("--json", action="store_true", help="the worker's JSON portraits instead of tables")
    add_settings_flags(p)
    p.set_defaults(func=cmd_segments)

    p = sub.add_parser("demo", help="broker + worker + MovieLens load + segment summary, in one go")
    p.add_argument("--limit", type=int, default=0, help="only the first N ratings (default all 100k)")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--logs", default=".segstream/demo", help="where broker and worker logs go")
    p.add_argument("--serve", action="store_true", help="afterwards keep broker and worker up for the live page until Ctrl-C")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "evaluate",
        help="offline: stream a JSONL file of contract events through the worker's code path and score the segments",
    )
    p.add_argument(
        "events",
        help="JSONL of contract events (items with \"title\", reviews with \"text\", behaviours with "
        "\"action\"), or a built-in set: bbc (k=5, 5 orders, folder labels), chinese-reviews (k=3, 5 orders, 100 users "
        "of hotels, books and electronics with two reviews each, domain words cut), movielens (k=16, 80/20 split by time)",
    )
    p.add_argument("--labels", help="CSV user_id,label: reference labels to score the segments against")
    p.add_argument("--heldout", help="CSV user_id,item_id: held-out items, to score segment-popularity recommendations")
    ks = p.add_mutually_exclusive_group()
    ks.add_argument("--k", type=int, help="number of segments (default SEGSTREAM_K; bbc 5, chinese-reviews 3, movielens 16)")
    ks.add_argument("--k-range", help="A..B: evaluate every k from A to B and suggest one")
    p.add_argument("--orders", type=int, help="stream N times, review/behaviour lines shuffled by seeds S, S+1, ... (default 1: file order; bbc and chinese-reviews 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles, batch KMeans and silhouette sample (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("model", help="encoder model commands")
    model_sub = p.add_subparsers(dest="model_command", required=True)
    e = model_sub.add_parser("export", help="build and export the encoder to ONNX (cached), ahead of the first start")
    e.add_argument("--model", choices=tuple(ENCODERS), help="the encoder by name (default SEGSTREAM_MODEL)")
    e.add_argument("--model-path", help="a local BERT-family folder instead (default SEGSTREAM_MODEL_PATH)")
    e.add_argument("--cache", help="cache directory (default SEGSTREAM_MODEL_CACHE)")
    e.set_defaults(func=cmd_model_export)

    p = sub.add_parser(
        "bench",
        help="encoder sentences/s against sentence-transformers on BBC texts (fp32, int8; fp16 on a GPU); "
        "optionally the worker end to end and user state",
    )
    p.add_argument("--texts", type=int, default=256, help="BBC articles to take snippets and first sentences of (default 256)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up; figures are medians (default 3)")
    p.add_argument("--threads", type=int, help="torch and onnxruntime threads (default: physical cores available)")
    p.add_argument("--gpu-batch", type=int, default=256, help="batch size of the CUDA rows (default 256)")
    p.add_argument(
        "--gpu-texts", type=int, default=16_384, help="texts per CUDA round: the set repeated to this many (default 16,384)"
    )
    p.add_argument("--end-to-end", action="store_true", help="also one worker on the embedded broker (takes minutes)")
    p.add_argument("--reviews", type=int, default=2225, help="--end-to-end: BBC reviews to publish (default all 2,225)")
    p.add_argument("--ratings", type=int, default=100_000, help="--end-to-end: MovieLens ratings to publish (default 100,000)")
    p.add_argument(
        "--state", action="store_true",
        help="also user state: bytes per user row over MovieLens, per-event cost on 1k vs 100k users (minutes)",
    )
    p.add_argument("--state-events", type=int, default=10_000, help="--state: timed behaviours per table size (default 10,000)")
    p.add_argument("--no-encoder", action="store_true", help="skip the encoder section")
    p.add_argument(
        "--soak", type=float, metavar="MINUTES",
        help="instead of the encoder section: one worker (RocksDB store) fed behaviours for MINUTES, its RSS sampled; "
        "PASS when RSS over the second half stays within 10%% of its mean",
    )
    p.add_argument("--rate", type=float, default=1000.0, help="--soak: behaviours per second (default 1,000)")
    p.add_argument("--users", type=int, default=20_000, help="--soak: synthetic users the behaviours spread over (default 20,000)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the tables")
    p.set_defaults(func=cmd_bench)

    stress.add_command(sub)

    p = sub.add_parser(
        "config", help="print every setting's environment variable, value, source (flag, env or default) and meaning"
    )
    p.add_argument("--json", action="store_true", help="one JSON object: variable -> value, default, source, meaning")
    add_settings_flags(p)
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except SettingError as exc:  # read by a command outside settings_from (evaluate, bench): one line too
        usage_error(args, str(exc))
    except BrokenPipeError:  # the reader went away (`segstream config | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
