"""``segstream segments``' rendering: a row per segment, titles over ids, one portrait in full."""

import io

from rich.console import Console

from stream.tools.segments import portrait_view, segments_table

OVERVIEW = {"model_version": 7, "seeded": True, "users_waiting_for_seed": 0}
PORTRAITS = [
    {
        "segment": 0, "size": 1200, "share": 0.6, "event_share": 0.55, "model_version": 7, "label": "space · alien · crew",
        "evidence": {"users": 1200, "events": 20480.4, "reviews": 480.4, "behaviours": 20000.0, "thin": False},
        "top_terms": [{"term": "space", "share": 0.2, "lift": 4.1, "events": 96.0}],
        "top_categories": [{"category": "Sci-Fi", "share": 0.4, "lift": 2.26, "events": 8000.0}],
        "top_items": [{"item_id": "50", "title": "Star Wars (1977)", "share": 0.05, "lift": 3.0, "events": 1000.0},
                      {"item_id": "999", "title": None, "share": 0.01, "lift": 1.2, "events": 200.0}],
        "actions": {"view": 0.75, "purchase": 0.25},
    },
    {
        "segment": 1, "size": 800, "share": 0.4, "event_share": 0.45, "model_version": 7, "label": "segment 1",
        "evidence": {"users": 800, "events": 0.0, "reviews": 0.0, "behaviours": 0.0, "thin": True},
        "top_terms": [], "top_categories": [], "top_items": [], "actions": {},
    },
]


def rendered(renderable) -> str:
    out = Console(width=160, file=io.StringIO())
    out.print(renderable)
    return out.file.getvalue()


def test_the_table_has_a_row_per_segment_with_lifts_and_titles_and_an_optional_column():
    text = rendered(segments_table(OVERVIEW, PORTRAITS, ("occupations", {0: "student 40"})))
    assert "model v7" in text and "occupations" in text and "student 40" in text
    row = next(line for line in text.splitlines() if "space · alien · crew" in line)
    assert "1,200" in row and "60%" in row and "Sci-Fi 2.3×" in row and "Star Wars (1977); 999" in row
    assert "20,480 events" in row and "thin" not in row
    empty = next(line for line in text.splitlines() if "segment 1" in line)
    assert "800" in empty and "40%" in empty and "no behaviour counted here yet" in empty  # users, no portrait yet
    assert "0 events, thin" in empty


def test_an_unseeded_model_says_so():
    text = rendered(segments_table({**OVERVIEW, "seeded": False, "users_waiting_for_seed": 12}, []))
    assert "not seeded yet (12 users waiting)" in text


def test_one_portrait_in_full_skips_empty_sections():
    text = rendered(portrait_view(PORTRAITS[0]))
    assert "segment 0: space · alien · crew" in text
    assert "1,200 users (60% of all), based on 20,480 events, 55% of recent events" in text
    assert "space" in text and "4.1×" in text
    assert "Star Wars (1977)" in text and "40%" in text and "2.3×" in text and "purchase" in text
    assert "terms" not in rendered(portrait_view(PORTRAITS[1]))
