"""Which encoder made a model's vectors.

Centroids only mean something in the embedding space of the encoder whose vectors they were
learned from: another model folder, another precision (int8 moves vectors by a cosine of about
0.01, as much as the hysteresis margin) or another token limit puts users elsewhere. A published
model records the fingerprint of its encoder, and a worker whose encoder differs refuses it.

The fingerprint hashes what the encoder serves: the graph file of its precision, the tokenizer
file, the token limit and the prefix put in front of every text (e5's "query: "). So it is the same on every host serving the same files (one export,
shared or copied, as the Dockerfile's), and differs for another folder, precision or limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

DIGEST_CHARS = 16


@dataclass(frozen=True)
class EncoderFingerprint:
    """``digest`` decides; ``name`` (what was served) is for the people who read the error."""

    digest: str
    name: str

    def __str__(self) -> str:
        return f"{self.digest} ({self.name})"

    def to_doc(self) -> dict[str, str]:
        return {"digest": self.digest, "name": self.name}

    @classmethod
    def from_doc(cls, doc: dict[str, str]) -> EncoderFingerprint:
        return cls(str(doc["digest"]), str(doc["name"]))


def fingerprint_files(graph: Path, tokenizer: Path, max_length: int, name: str, prefix: str = "") -> EncoderFingerprint:
    """The fingerprint of an encoder serving ``graph`` with ``tokenizer`` up to ``max_length``
    tokens, ``prefix`` in front of every text (reads the files: about 0.2 s for MiniLM's fp32
    graph)."""
    digest = hashlib.sha256()
    for path in (graph, tokenizer):
        with path.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    digest.update(f"max_length={max_length}".encode())
    if prefix:
        digest.update(f"prefix={prefix}".encode())
    return EncoderFingerprint(digest.hexdigest()[:DIGEST_CHARS], name)


def mismatch(made_with: EncoderFingerprint | None, ours: EncoderFingerprint) -> str:
    """Why vectors of encoder ``ours`` must not be assigned with a model ``made_with``, naming
    both; "" when they may (the same encoder, or a model that does not say: see the caller)."""
    if made_with is None or made_with.digest == ours.digest:
        return ""
    return f"was made with encoder {made_with}, but this worker's encoder is {ours}"
