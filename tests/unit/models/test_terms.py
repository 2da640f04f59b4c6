import math

import pytest

from models.profiles import SegmentProfiles
from models.terms import Corpus, highest

T0 = 1_700_000_000.0


def test_reduce_frequent_is_bertopics_square_root_of_the_share():
    counts = [{"said": 20.0, "goal": 3.0}, {"said": 20.0, "chip": 3.0}]
    corpus = Corpus.of(counts)
    average = 23.0
    plain = dict(corpus.ctfidf(counts[0]))
    rooted = dict(corpus.ctfidf(counts[0], reduce_frequent=True))
    assert plain["said"] == pytest.approx(20 / 23 * math.log(1 + average / 40))
    assert rooted["said"] == pytest.approx(math.sqrt(20 / 23) * math.log(1 + average / 40))
    assert rooted["goal"] == pytest.approx(math.sqrt(3 / 23) * math.log(1 + average / 3))


def test_a_term_in_every_review_of_every_segment_does_not_label_a_segment():
    """Plain c-TF-IDF would rank "said" first in every segment; the root of its share does not."""
    topics = (["striker", "keeper", "league"], ["chip", "software", "server"], ["actor", "director", "cinema"])
    profiles = SegmentProfiles(k=3, half_life_s=86400.0)
    for segment, words in enumerate(topics):
        for n in range(20):  # "said" in all 20 reviews, each topic word in 3 of them... at most
            profiles.add_review(segment, f"officials said {words[n % 3]}" if n < 9 else "officials said", T0)
    corpus = Corpus.of(profiles.to_doc()["segments"][s]["terms"] for s in range(3))
    plain = highest(corpus.ctfidf(profiles.to_doc()["segments"][0]["terms"]), 1)
    assert plain[0][0] in {"said", "officials"}  # what the label would have been
    for segment, words in enumerate(topics):
        label = profiles.profile(segment)["label"].split(" · ")
        assert "said" not in label and "officials" not in label
        assert set(label) == set(words)


def test_lift_is_the_share_here_over_the_share_overall_and_zero_when_nothing_is_left():
    corpus = Corpus.of([{"Drama": 3.0, "Comedy": 1.0}, {"Drama": 1.0, "Comedy": 3.0}])
    assert corpus.lift("Drama", 0.75) == pytest.approx(1.5)  # 75% here, 50% overall
    assert Corpus({"x": 0.0}, 0.0, 1.0).lift("x", 0.0) == 0.0
