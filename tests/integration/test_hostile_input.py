"""One bad record never takes good ones with it, never vanishes, and no clock poisons a user or
a portrait: each bad record is a dead letter of its own, bounded, with its reason."""

from __future__ import annotations

import base64
import json
import time
import zlib

from kafka_io import drain, produce

from stream.datasets import movielens

MOVIES = [m for m in movielens.movies() if m.genres == ("Horror",)][:3] + [m for m in movielens.movies() if m.genres == ("Comedy",)][:3]
NOW_MS = int(time.time() * 1000)
BIG = {"message.max.bytes": 10_000_000}


def good(batch: int, n: int, user: str | None = None) -> tuple[str, dict]:
    user = user or f"g{n % 10}"
    movie = MOVIES[n % len(MOVIES)]
    return user, {"event_id": f"good-{batch}-{n}", "user_id": user, "item_id": movie.item_id, "action": "view",
                  "ts": NOW_MS - 86_400_000 + batch * 1000 + n}


def original(letter: dict) -> bytes:
    """The (first bytes of the) value a dead letter carries."""
    return letter["value"].encode() if letter["value"] is not None else base64.b64decode(letter["value_base64"])


def raw_behaviour(ts: str, user: str = "clock") -> bytes:
    """A behaviour whose ``ts`` is the JSON text ``ts``, as it is (JSON encoding would change it)."""
    head = json.dumps({"event_id": f"bad-{zlib.crc32(ts.encode())}", "user_id": user, "item_id": MOVIES[0].item_id, "action": "view"})
    return f'{head[:-1]}, "ts": {ts}}}'.encode()


HOSTILE = {
    "a lone surrogate in an id": (b'{"event_id": "s", "user_id": "\\udc00", "item_id": "i", "action": "view", "ts": 1}', "lone surrogate"),
    "a 400-digit ts": (raw_behaviour("9" * 400), "too large for a time"),
    "ts 1e400": (raw_behaviour("1e400"), "too large for a float"),
    "ts Infinity": (raw_behaviour("Infinity"), "Infinity"),
    "5,000-deep JSON": (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    "a number over 4,300 digits": (raw_behaviour("1" * 5000), "not JSON this service can read"),
    "ts in microseconds": (raw_behaviour(str(NOW_MS * 1000)), "as epoch microseconds"),
    "ts in seconds": (raw_behaviour(str(NOW_MS // 1000)), "as epoch seconds"),
    "ts 1e15": (raw_behaviour("1000000000000000"), "microseconds"),
    "year 9999": (raw_behaviour('"9999-12-31T00:00:00Z"'), "ahead of the wall clock"),
    "a negative ts": (raw_behaviour("-5"), "non-negative"),
    "1969": (raw_behaviour('"1969-07-20T20:17:00Z"'), "before the earliest event time"),
    "a NaN-like string": (raw_behaviour('"NaN"'), "not an ISO-8601 time"),
    "a 700 KB ts string": (raw_behaviour('"' + "7" * 700_000 + '"'), "not an ISO-8601 time"),
}


def test_each_bad_record_is_its_own_dead_letter_and_the_good_ones_apply(settings_for, start_worker):
    settings = settings_for(k=2, seed_users=2)
    worker = start_worker(settings)
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in MOVIES])
    worker.wait_until(lambda h: h["catalogue_items"] == len(MOVIES), 120, "the catalogue")
    for batch, (raw, _) in enumerate(HOSTILE.values()):
        records = [good(batch, n) for n in range(100)]
        produce(settings, settings.topic_behaviors, [*records[:50], (None, raw), *records[50:]], **BIG)
    sent = 100 * len(HOSTILE)
    health = worker.wait_until(lambda h: h["counters"]["applied"] + h["counters"]["dead_letters"] >= sent + len(HOSTILE), 120, "every record")
    assert (health["counters"]["applied"], health["counters"]["dead_letters"]) == (sent, len(HOSTILE))
    letters = {original(letter)[:60]: letter for _, letter in drain(settings, settings.topic_dead_letters)}
    assert len(letters) == len(HOSTILE)
    for name, (raw, reason) in HOSTILE.items():
        letter = letters[raw[:60]]
        assert reason in letter["error"], (name, letter["error"][:300])
        assert len(json.dumps(letter)) < 100_000 and len(letter["error"]) < 1000, name
    # The user whose clock was wrong sends right events: they apply, and nothing was poisoned.
    produce(settings, settings.topic_behaviors, [good(99, n, user="clock") for n in range(3)])
    worker.wait_until(lambda h: h["counters"]["applied"] == sent + 3, 60, "the right events")
    assert worker.get("/users/clock")[1]["events"] == 3
    labels = [s["label"] for s in worker.get("/segments")[1]["segments"]]
    assert all(not label.startswith("segment ") for label in labels), labels
    log_lines = worker.log_path.read_text().splitlines()
    assert max(map(len, log_lines)) < 5_000 and "Traceback" not in "\n".join(log_lines)


def test_huge_records_are_cut_and_never_vanish(settings_for, start_worker):
    settings = settings_for(k=2, seed_users=2)
    worker = start_worker(settings)
    not_json = b"\xff" + b"<" * 2_000_000
    long_text = " ".join(["a long review about a film"] * 200_000)  # 5.4 MB of text
    review = {"event_id": "huge", "user_id": "reader", "item_id": "film", "text": long_text, "ts": NOW_MS}
    started = time.monotonic()
    produce(settings, settings.topic_reviews, [("reader", not_json), ("reader", review)], **BIG)
    health = worker.wait_until(lambda h: h["counters"]["applied"] + h["counters"]["dead_letters"] >= 2, 60, "both")
    elapsed = time.monotonic() - started
    assert (health["counters"]["applied"], health["counters"]["dead_letters"]) == (1, 1)
    (letter,) = [letter for _, letter in drain(settings, settings.topic_dead_letters)]
    assert letter["value_truncated"] and letter["value_bytes"] == len(not_json) and len(letter["value_base64"]) < 100_000
    print(f"a 2 MB bad record and a 5.4 MB review handled {elapsed:.1f} s after they were produced")
    assert elapsed < 5
    assert worker.get("/users/reader")[1]["reviews"] == 1
