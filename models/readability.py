"""How much of its input the encoder can read: the share of unknown tokens per text.

An English vocabulary turns most Chinese characters into one unknown token each (MiniLM: 13 of
the 16 characters of "这款手机的电池续航很长，充电也很快。"), and the vectors of such texts say
next to nothing; nothing else shows it. The encoder counts, per text, the unknown tokens among
its own (neither special nor prefix) tokens; a text with more than :data:`UNREADABLE_SHARE` of
them is unreadable, and a worker whose recent texts are often unreadable says so once (until it
reads well again).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

UNREADABLE_SHARE = 0.2  # of a text's tokens unknown: the text is unreadable
RECENT_TEXTS = 200
WARN_SHARE = 0.1  # of the recent texts unreadable: time to say it


@dataclass
class Readability:
    """Running counts over every text encoded, and a window of the recent ones."""

    texts: int = 0
    tokens: int = 0
    unknown_tokens: int = 0
    unreadable_texts: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=RECENT_TEXTS))  # True: unreadable
    warned: bool = False

    def observe(self, counts: Iterable[tuple[int, int]]) -> None:
        """(tokens, unknown tokens) of each text of a batch."""
        for tokens, unknown in counts:
            unreadable = tokens > 0 and unknown > UNREADABLE_SHARE * tokens
            self.texts += 1
            self.tokens += tokens
            self.unknown_tokens += unknown
            self.unreadable_texts += unreadable
            self.recent.append(unreadable)

    @property
    def unknown_share(self) -> float:
        """Unknown tokens among all tokens read so far."""
        return self.unknown_tokens / self.tokens if self.tokens else 0.0

    @property
    def recent_unreadable_share(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else 0.0

    def should_warn(self) -> bool:
        """True once when the recent texts turn unreadable (a full window, or at least 20 texts);
        armed again once they read well."""
        poor = len(self.recent) >= min(20, RECENT_TEXTS) and self.recent_unreadable_share > WARN_SHARE
        if poor and not self.warned:
            self.warned = True
            return True
        if not poor and len(self.recent) == RECENT_TEXTS:
            self.warned = False
        return False

    def to_doc(self) -> dict[str, float | int]:
        return {
            "texts": self.texts,
            "unknown_token_share": round(self.unknown_share, 4),
            "unreadable_texts": self.unreadable_texts,
            "recent_unreadable_share": round(self.recent_unreadable_share, 4),
        }
