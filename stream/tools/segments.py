"""``segstream segments``: a running worker's segments as a table, or one segment's portrait.

It asks the worker's HTTP API (GET /segments and /segments/{id}) rather than reading the
model topic: the published model names items by id only (titles would push a snapshot of k
segments past Kafka's message size), and the titles people read live in each worker's
catalogue; the answers are also exactly what the page and other HTTP clients see. The demo
prints the same table (stream/tools/demo.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from stream.config import Settings
from stream.tools.worker_api import get_json

Getter = Callable[[str], Any]  # path -> the worker's JSON answer

TABLE_TOP = 3  # categories and items per segment in the table
PORTRAIT_TOP = 10  # in one segment's portrait and in --json
PIPE_WIDTH = 140


def collect(get: Getter, top: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """GET /segments, then each segment's portrait with ``top`` terms, categories and items."""
    overview = get("/segments")
    return overview, [get(f"/segments/{s['id']}?top={top}") for s in overview["segments"]]


def item_name(item: Mapping[str, Any]) -> str:
    return item.get("title") or item["item_id"]


# A segment with users and no categories or items: its users wrote reviews only, or brought
# nothing yet (rows written before users kept their own counts).
NOT_COUNTED_YET = "(no behaviour counted here yet)"


def evidence_text(evidence: Mapping[str, Any]) -> str:
    """What backs a portrait, as a person reads it: "1,204 events", "thin" below the floor."""
    text = f"{evidence['events']:,.0f} events"
    return f"{text}, thin" if evidence["thin"] else text


def segments_table(
    overview: Mapping[str, Any], portraits: list[dict[str, Any]], extra: tuple[str, Mapping[int, str]] | None = None
) -> Table:
    """One row per segment: id, size, share of users, label, the evidence behind its portrait,
    distinctive categories with their lift, distinctive items by title, both in the order of
    that lift; ``extra``: a column (name, text per segment id) of the caller's."""
    state = "" if overview["seeded"] else f", not seeded yet ({overview['users_waiting_for_seed']} users waiting)"
    table = Table(title=f"model v{overview['model_version']}{state}", title_justify="left", show_lines=True)
    for name, justify in (("id", "right"), ("size", "right"), ("share", "right"), ("label", "left"),
                          ("evidence", "right"), ("categories (lift)", "left"), ("items", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    if extra:
        table.add_column(extra[0])
    for p in portraits:
        cats = ", ".join(f"{c['category']} {c['lift']:.1f}×" for c in p["top_categories"][:TABLE_TOP])
        items = "; ".join(item_name(i) for i in p["top_items"][:TABLE_TOP])
        if not (cats or items) and p["size"]:
            cats = NOT_COUNTED_YET
        row = [
            str(p["segment"]), f"{p['size']:,}", f"{p['share']:.0%}", p["label"], evidence_text(p["evidence"]),
            cats or "-", items or "-",
        ]
        table.add_row(*row, *([extra[1].get(p["segment"], "")] if extra else []))
    return table


def portrait_view(p: Mapping[str, Any]) -> Group:
    """One segment in full: its terms, categories, items and action mix, as shares and lifts."""
    heading = (
        f"[bold]segment {p['segment']}[/bold]: {p['label']}\n{p['size']:,} users ({p['share']:.0%} of all), "
        f"based on {evidence_text(p['evidence'])}, {p['event_share']:.0%} of recent events, model v{p['model_version']}"
    )
    terms = _table(
        "terms", ("term", "share", "lift"), [(t["term"], f"{t['share']:.0%}", f"{t['lift']:.1f}×") for t in p["top_terms"]]
    )
    cats = _table(
        "categories", ("category", "share", "lift"),
        [(c["category"], f"{c['share']:.0%}", f"{c['lift']:.1f}×") for c in p["top_categories"]],
    )
    items = _table(
        "items", ("item", "id", "share", "lift"),
        [(item_name(i), i["item_id"], f"{i['share']:.1%}", f"{i['lift']:.1f}×") for i in p["top_items"]],
    )
    actions = _table("actions", ("action", "share"), [(a, f"{s:.0%}") for a, s in p["actions"].items()])
    return Group(heading, *(t for t in (terms, cats, items, actions) if t.row_count))


def console() -> Console:
    """stdout; wide enough for the table's titles when it is a file or a pipe (rich assumes 80)."""
    out = Console()
    return out if out.is_terminal else Console(width=PIPE_WIDTH)


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for n, name in enumerate(columns):
        table.add_column(name, justify="left" if n == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def run(settings: Settings, as_json: bool, segment: int | None) -> int:
    """Print the table (or one portrait, or JSON); LookupError naming the ids for an unknown ``segment``."""
    get = lambda path: get_json(settings, path, "segments")  # noqa: E731
    if segment is None:
        overview, portraits = collect(get, PORTRAIT_TOP if as_json else TABLE_TOP)
        if as_json:
            print(json.dumps({**overview, "segments": portraits}, indent=2, ensure_ascii=False), flush=True)
        else:
            console().print(segments_table(overview, portraits))
        return 0
    k = len(get("/segments")["segments"])
    if not 0 <= segment < k:
        raise LookupError(f"--segment {segment} is out of range: the worker's segments are 0..{k - 1}")
    portrait = get(f"/segments/{segment}?top={PORTRAIT_TOP}")
    if as_json:
        print(json.dumps(portrait, indent=2, ensure_ascii=False), flush=True)
    else:
        console().print(portrait_view(portrait))
    return 0
