"""What the HTTP views answer for people: ISO-8601 UTC times, shares, item titles."""

from types import SimpleNamespace

import numpy as np
import pytest

from models.clustering import KMeansParams, StreamingKMeans
from models.profiles import SegmentProfiles
from stream.contract.records import iso_ms
from stream.core.catalogue import CatalogueItem
from stream.core.user_state import UserState
from stream.worker.web import recommendations, segment_portrait, segments

TS = 1_796_096_515.592  # 2026-12-01T03:41:55.592Z
VECTOR = np.ones(2, np.float32)


def context() -> SimpleNamespace:
    model = StreamingKMeans(KMeansParams(k=2, seed_users=2), 2)
    model.sizes[:] = [3, 1]
    model.history.append({"event": "seed", "version": 1, "ts": TS})
    profiles = SegmentProfiles(k=2, half_life_s=86400.0)
    for _ in range(4):
        profiles.add_action(0, "amelie", ["Comedy"], "purchase", 3.0, TS)
        profiles.add_action(0, "no-title", ["Comedy"], "view", 1.0, TS)
        profiles.add_action(1, "gone", ["Drama"], "view", 1.0, TS)
    catalogue = {
        "amelie": CatalogueItem(VECTOR, ("Comedy",), "Amélie (2001)"),
        "no-title": CatalogueItem(VECTOR, ("Comedy",)),  # a row written before titles
    }
    return SimpleNamespace(local=SimpleNamespace(model=model, profiles=profiles), catalogue=catalogue, users={})


def test_times_are_iso_8601_utc_with_milliseconds_as_change_events_write_them():
    assert iso_ms(TS) == "2026-12-01T03:41:55.592+00:00"
    assert iso_ms(None) is None
    assert segments(context())["model_events"] == [{"event": "seed", "version": 1, "ts": "2026-12-01T03:41:55.592+00:00"}]
    user = UserState("u1")
    assert user.public_view()["last_event_ts"] is None
    user.ref_ts = TS
    assert user.public_view()["last_event_ts"] == "2026-12-01T03:41:55.592+00:00"


def test_segments_have_their_share_of_users():
    listed = segments(context())["segments"]
    assert [(s["id"], s["size"], s["share"]) for s in listed] == [(0, 3, 0.75), (1, 1, 0.25)]


def test_a_portrait_and_recommendations_name_items_by_title_where_the_catalogue_has_one():
    ctx = context()
    portrait = segment_portrait(ctx, 0, top=5)
    assert (portrait["size"], portrait["share"]) == (3, 0.75)
    titles = {i["item_id"]: i["title"] for i in portrait["top_items"]}
    assert titles == {"amelie": "Amélie (2001)", "no-title": None}
    assert portrait["top_items"][0]["share"] == pytest.approx(0.75)
    recs = recommendations(ctx, "cold-user", 3)
    assert [(r["item_id"], r["title"]) for r in recs["items"]] == [
        ("amelie", "Amélie (2001)"),
        ("gone", None),  # no longer in the catalogue
        ("no-title", None),
    ]
    assert [r["share"] for r in recs["items"]] == pytest.approx([0.6, 0.2, 0.2])
    assert all(r["reason"].startswith("popular with everyone") and r["similarity"] is None for r in recs["items"])


def test_a_users_recommendations_skip_what_they_acted_on_and_fill_up_from_everyone():
    ctx = context()
    user = UserState("u1", segment=1, vector_sum=VECTOR.copy())
    user.touch_item("amelie", keep=50)
    ctx.users["u1"] = user
    recs = recommendations(ctx, "u1", 5)
    items = [r["item_id"] for r in recs["items"]]
    assert items == ["gone", "no-title"]  # segment 1's one item, then everyone's; amelie was seen
    assert recs["items"][0]["reason"] == "popular in segment 1 (100.0% of its behaviour)"
    assert recs["items"][1]["similarity"] == pytest.approx(1.0) and "similarity to your taste 1.00" in recs["items"][1]["reason"]
