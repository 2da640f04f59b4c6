"""Portrait terms name no one: contact details are dropped, and a term needs distinct users."""

from __future__ import annotations

import json

import pytest

from models.clustering import KMeansParams
from models.profiles import ProfileParams, SegmentProfiles, review_terms
from models.segmentation import ModelUpdate, Segmentation, SegmentationParams
from models.term_privacy import Candidates, scrub_contacts

T0 = 1_700_000_000.0
PARAMS = SegmentationParams(KMeansParams(k=2, seed_users=2), ProfileParams(2, 86_400.0, term_min_users=5))
SECRET = "Zorblax Quintavius wrote this, mail zorblax.q@example.org or call +44 20 7946 0958"


def owner_learning(reviews: list[tuple[str, str]]) -> Segmentation:
    """The owner after one worker update per review (user, text), all in segment 0."""
    owner = Segmentation.new(PARAMS, dim=2)
    for offset, (user, text) in enumerate(reviews):
        update = owner.new_update()
        update.profiles.add_review(0, text, T0 + offset, user)
        owner.learn(ModelUpdate.from_bytes(update.to_bytes()), offset)  # over the wire, as the owner gets it
    return owner


def terms_of(segmentation: Segmentation) -> set[str]:
    return {t["term"] for t in segmentation.profiles.profile(0, top=1000)["top_terms"]}


def test_contacts_are_dropped_before_terms_are_taken():
    assert scrub_contacts("write to a.b+c@mail.example.com today").split() == ["write", "to", "today"]
    assert "http" not in scrub_contacts("see https://shop.example/x?y=1 and www.example.org/page")
    assert scrub_contacts("call (555) 123-4567 or +1.555.987.6543 now").split() == ["call", "or", "now"]
    assert review_terms(SECRET) == ("zorblax", "quintavius", "wrote", "mail")  # no address parts


def test_one_users_name_and_email_in_three_reviews_never_become_terms():
    owner = owner_learning([("u1", SECRET)] * 3 + [(f"other-{i}", "lovely battery") for i in range(5)])
    terms = terms_of(owner)
    assert terms == {"lovely", "battery"}
    published = owner.to_bytes()
    for word in (b"zorblax", b"quintavius", b"example", b"wrote"):
        assert word not in published  # nor on the segment-model topic
    again = Segmentation.from_bytes(published, PARAMS, 2)
    assert terms_of(again) == {"lovely", "battery"}


def test_five_users_make_a_normal_word_a_term_with_its_whole_count():
    four = owner_learning([(f"user-{i}", "great battery") for i in range(4)])
    assert terms_of(four) == set()  # four users are not enough
    five = owner_learning([(f"user-{i}", "great battery") for i in range(5)])
    assert terms_of(five) == {"great", "battery"}
    every_review = SegmentProfiles(k=2, half_life_s=86_400.0)  # no threshold: the same count
    for i in range(5):
        every_review.add_review(0, "great battery", T0 + i)
    counted, expected = five.profiles._segments[0].terms, every_review._segments[0].terms
    assert counted == pytest.approx(expected)  # the reviews before the fifth user count too


def test_the_same_user_counted_once_across_updates_and_workers():
    owner = owner_learning([("u1", "quiet fan")] * 10 + [("u2", "quiet fan")] * 3)
    assert terms_of(owner) == set()


def test_candidates_are_bounded_and_travel_only_in_updates():
    profiles = SegmentProfiles(k=1, half_life_s=86_400.0, max_terms=10, term_min_users=5)
    for i in range(50):
        profiles.add_review(0, f"word{chr(97 + i % 26)}{chr(97 + i // 26)}", T0, f"user-{i}")
    assert len(profiles._segments[0].candidates.counts) <= 10
    assert "candidates" not in json.dumps(profiles.to_doc())
    back = SegmentProfiles.from_doc(json.loads(json.dumps(profiles.to_doc(candidates=True))))
    assert back._segments[0].candidates == profiles._segments[0].candidates


def test_a_term_collects_at_most_min_users_hashes():
    candidates = Candidates()
    for user in range(4):
        assert candidates.add("word", 1.0, [user], 5) is None
    assert candidates.add("word", 1.0, [4, 5, 6], 5) == 5.0
    assert candidates.counts == {} and candidates.users == {}


def test_a_portrait_from_before_the_threshold_loses_its_terms():
    old = SegmentProfiles(k=1, half_life_s=86_400.0)
    for _ in range(2):
        old.add_review(0, "private words", T0, "u1")
        old.add_action(0, "sku-1", ["Drama"], "view", 1.0, T0)
    doc = old.to_doc()
    del doc["term_min_users"]
    restored = SegmentProfiles.from_doc(doc)
    assert restored.profile(0)["top_terms"] == [] and restored.profile(0)["top_categories"]
