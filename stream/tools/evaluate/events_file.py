"""A JSONL file of contract events, sorted into the catalogue and the stream; labels and held-out CSVs."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def event_kind(doc: Any) -> str | None:
    """Which contract event a JSON value is: "behavior" (has "action"), "review" (has "text"),
    "item" (has "title"), else None."""
    if not isinstance(doc, dict):
        return None
    if "action" in doc:
        return "behavior"
    if "text" in doc:
        return "review"
    if "title" in doc:
        return "item"
    return None


@dataclass(frozen=True, slots=True)
class StreamLine:
    line_no: int
    kind: str  # "review" | "behavior"
    user_id: str | None
    item_id: str | None
    value: bytes

    @property
    def key(self) -> bytes | None:
        return None if self.user_id is None else self.user_id.encode()


@dataclass
class EventFile:
    path: str
    items: list[tuple[int, bytes]] = field(default_factory=list)
    stream: list[StreamLine] = field(default_factory=list)
    not_json: int = 0
    unrecognised: int = 0

    @property
    def users(self) -> list[str]:
        return list(dict.fromkeys(line.user_id for line in self.stream if line.user_id is not None))

    def counts(self) -> dict[str, int]:
        kinds = Counter(line.kind for line in self.stream)
        return {
            "items": len(self.items),
            "reviews": kinds.get("review", 0),
            "behaviors": kinds.get("behavior", 0),
            "users": len(self.users),
            "not_json": self.not_json,
            "unrecognised": self.unrecognised,
        }


def _ident(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return None if value is None else str(value)


def read_events(path: str | Path) -> EventFile:
    """Sort a JSONL file's lines into items and (review / behaviour) stream lines, in file order."""
    out = EventFile(str(path))
    with open(path, "rb") as handle:
        for line_no, line in enumerate(handle, 1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                doc = json.loads(raw)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                out.not_json += 1
                continue
            kind = event_kind(doc)
            if kind is None:
                out.unrecognised += 1
            elif kind == "item":
                out.items.append((line_no, raw))
            else:
                out.stream.append(StreamLine(line_no, kind, _ident(doc, "user_id"), _ident(doc, "item_id"), raw))
    return out


def read_labels(path: str | Path) -> dict[str, str]:
    """``user_id,label`` CSV (with that header) -> {user: label}."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"user_id", "label"} <= set(reader.fieldnames):
            raise SystemExit(f"{path}: expected a CSV with header user_id,label")
        return {row["user_id"]: row["label"] for row in reader}


def read_heldout(path: str | Path) -> dict[str, list[str]]:
    """``user_id,item_id`` CSV (with that header) -> {user: [held-out items]}."""
    held: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"user_id", "item_id"} <= set(reader.fieldnames):
            raise SystemExit(f"{path}: expected a CSV with header user_id,item_id")
        for row in reader:
            held.setdefault(row["user_id"], []).append(row["item_id"])
    return held


def parse_k_range(text: str) -> list[int]:
    """"A..B" -> [A, ..., B] (1 <= A <= B)."""
    try:
        low, high = (int(part) for part in text.split(".."))
    except ValueError as exc:
        raise ValueError(f"--k-range expects A..B, e.g. 3..12, got {text!r}") from exc
    if not 1 <= low <= high:
        raise ValueError(f"--k-range needs 1 <= A <= B, got {text!r}")
    return list(range(low, high + 1))
