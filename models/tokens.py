"""Review text to portrait terms: words, per language, without stop words.

A portrait lists words a person reads as the segment's topic, so words every review uses
("the", "的") are dropped here by a stop list per language, and words frequent in every
segment rank low by lift later (models/portraits.py). Chinese is written without
spaces: its runs are cut into words by jieba (a dictionary segmenter), otherwise a whole
clause would be one "term". jieba is imported, and its dictionary loaded, only when a review
has Chinese characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from functools import cache
from types import ModuleType

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from models.term_privacy import scrub_contacts

__all__ = ["CHINESE_STOP_WORDS", "review_terms"]

# Unicode letters only (no digits, no underscore), at least three of them.
_WORD = re.compile(r"[^\W\d_]{3,}")
# CJK unified ideographs (base block, extension A, compatibility): text jieba segments.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A Chinese word needs two characters: single characters are mostly particles.
_HAN_MIN_CHARS = 2

# Function words and review fillers of Chinese reviews (particles, pronouns, adverbs of degree);
# jieba ships no stop list.
CHINESE_STOP_WORDS = frozenset(
    """
    一个 一些 一下 一样 一直 不是 不过 不会 个人 之后 什么 他们 以后 以为 但是 你们 其实 出来 只是 可以
    可能 因为 因此 好像 如果 就是 已经 我们 所以 时候 有点 没有 然后 现在 而且 自己 虽然 觉得 认为
    还是 这个 这些 这样 这么 那个 那些 那么 那样 起来 非常 还有 应该 感觉 比较 一般 东西 真的 确实
    """.split()
)


def review_terms(text: str) -> tuple[str, ...]:
    """Distinct terms of one review, in order of first appearance (binary per document).

    Counting a term once per review keeps one long or repetitive review from outweighing
    many short ones in its segment's portrait. E-mail addresses, URLs and phone-like numbers
    are removed first (models/term_privacy.py), so no part of them becomes a term.
    """
    return tuple(dict.fromkeys(_words(scrub_contacts(text).lower())))


def _words(text: str) -> Iterator[str]:
    if not _HAN.search(text):
        yield from (w for w in _WORD.findall(text) if w not in ENGLISH_STOP_WORDS)
        return
    for token in _jieba().lcut(text):
        if _HAN.search(token):
            if len(token) >= _HAN_MIN_CHARS and token not in CHINESE_STOP_WORDS:
                yield token
        else:
            yield from (w for w in _WORD.findall(token) if w not in ENGLISH_STOP_WORDS)


@cache
def _jieba() -> ModuleType:
    """jieba, quiet: it logs its dictionary loading at DEBUG/INFO on its own logger."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba
