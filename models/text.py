"""Text cleaning applied to event payloads before they reach the encoder.

Producers send whatever their UI holds: HTML fragments, entity-escaped strings,
zero-width joiners pasted from chat apps. Tokenizers would happily turn markup
and invisible characters into tokens and shift the embedding, so everything is
reduced here to the visible text with single spaces.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

__all__ = ["clean_text"]

# Tags whose contents are code, not text.
_DROPPED_TAGS = frozenset({"script", "style"})

# Tags that separate words visually; without a space "<p>a</p><p>b</p>" would read "ab".
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1",
        "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
        "option", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th",
        "thead", "title", "tr", "ul",
    }
)


def _invisible_chars_pattern() -> re.Pattern[str]:
    """Character class of control (Cc), format (Cf) and surrogate (Cs) code points.

    Whitespace controls (tab, newline, ...) are left out: the whitespace collapse turns
    them into spaces. Lone surrogates are included because the tokenizer rejects them.
    Only planes 0, 1 and 14 hold such characters (planes 2-13 are ideographs or
    unassigned, 15-16 private use), so scanning those keeps import time at ~20 ms.
    """
    ranges: list[tuple[int, int]] = []
    for plane in (0, 1, 14):
        for cp in range(plane << 16, (plane + 1) << 16):
            ch = chr(cp)
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs") and not ch.isspace():
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1] = (ranges[-1][0], cp)
                else:
                    ranges.append((cp, cp))
    members = "".join(
        f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges
    )
    return re.compile(f"[{members}]")


_INVISIBLE = _invisible_chars_pattern()


class _TextExtractor(HTMLParser):
    """Collects text nodes; entities are decoded by the parser (convert_charrefs)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._dropped_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED_TAGS:
            self._dropped_depth += 1
        elif tag in _BLOCK_TAGS:
            self._parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED_TAGS:
            self._dropped_depth = max(0, self._dropped_depth - 1)
        elif tag in _BLOCK_TAGS:
            self._parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._dropped_depth:
            self._parts.append(data)

    def text(self) -> str:
        return "".join(self._parts)


def _strip_html(raw: str) -> str:
    parser = _TextExtractor()
    parser.feed(raw)
    parser.close()  # flushes text buffered while waiting for a possible entity
    return parser.text()


def clean_text(raw: str) -> str:
    """Return the visible text of ``raw`` as NFC with single spaces; "" if nothing is left.

    An empty result means the event carries no usable text and should be dead-lettered.
    """
    if "<" in raw:
        text = _strip_html(raw)
    elif "&" in raw:
        text = html.unescape(raw)
    else:
        text = raw
    # Drop invisibles before composing, so "e\u200b\u0301" composes to "\u00e9".
    text = unicodedata.normalize("NFC", _INVISIBLE.sub("", text))
    return " ".join(text.split())
