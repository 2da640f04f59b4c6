"""The share of unknown tokens per text, and when a worker says its encoder cannot read the
input (models/readability.py); an English encoder on Chinese text is in
tests/unit/models/test_encoder.py."""

from models.readability import RECENT_TEXTS, Readability


def test_texts_over_a_fifth_unknown_are_unreadable_and_counted():
    r = Readability()
    r.observe([(10, 0), (10, 2), (10, 3), (0, 0)])  # 2 of 10 is not over a fifth; an empty text reads
    assert (r.texts, r.tokens, r.unknown_tokens, r.unreadable_texts) == (4, 30, 5, 1)
    assert r.to_doc() == {"texts": 4, "unknown_token_share": round(5 / 30, 4), "unreadable_texts": 1,
                          "recent_unreadable_share": 0.25}


def test_the_warning_comes_once_when_recent_texts_turn_unreadable_and_again_after_they_recovered():
    r = Readability()
    r.observe([(10, 0)] * 19 + [(10, 9)] * 3)
    assert r.should_warn() and not r.should_warn()  # 3 of 22 recent texts unreadable: said once
    r.observe([(10, 0)] * RECENT_TEXTS)  # a full window read well: armed again
    assert not r.should_warn()
    r.observe([(10, 9)] * 30)
    assert r.should_warn()


def test_a_few_texts_are_not_enough_to_warn():
    r = Readability()
    r.observe([(10, 10)] * 5)
    assert r.recent_unreadable_share == 1.0 and not r.should_warn()
