"""``segstream explain``: a worker's answer in sentences; one line when no worker answers."""

from __future__ import annotations

import pytest

from stream.config import Settings
from stream.tools.broker import free_port
from stream.tools.explain import describe, run

ANSWER = {
    "user_id": "42", "segment": 2, "label": "space · aliens", "summary": [
        "kept in segment 2 although segment 0 is 0.012 closer: the margin is 0.021 (5% of that centroid's distance 0.410)",
        "'Star Wars (1977)' (Action, Sci-Fi) is the closest of your items to this segment",
    ],
    "distance": "Euclidean", "nearest": [
        {"segment": 0, "label": "drama", "distance": 0.41},
        {"segment": 2, "label": "space · aliens", "distance": 0.422},
        {"segment": 1, "label": "comedy", "distance": 0.7},
    ],
    "items": [
        {"item_id": "50", "title": "Star Wars (1977)", "categories": ["Action", "Sci-Fi"], "similarity": 0.61},
        {"item_id": "7", "title": None, "categories": [], "similarity": -0.1},
    ],
}


def test_describe_reads_as_sentences_with_the_figures():
    assert describe(ANSWER).splitlines() == [
        "user 42: segment 2 (space · aliens)",
        "  kept in segment 2 although segment 0 is 0.012 closer: the margin is 0.021 (5% of that centroid's distance 0.410)",
        "  'Star Wars (1977)' (Action, Sci-Fi) is the closest of your items to this segment",
        "nearest centroids (Euclidean):",
        "  segment 0: 0.4100  drama",
        "  segment 2: 0.4220  space · aliens",
        "  segment 1: 0.7000  comedy",
        "items pulling toward the segment (cosine to its centroid):",
        "  +0.610  Star Wars (1977) (Action, Sci-Fi)",
        "  -0.100  7",
    ]


def test_no_worker_is_one_line_and_a_non_zero_exit():
    port = free_port()
    with pytest.raises(SystemExit) as stopped:
        run(Settings(web_port=port), "42", as_json=False)
    message = str(stopped.value.code)
    assert message.startswith(f"segstream explain: no worker answers at http://127.0.0.1:{port}/users/42/explain")
    assert "\n" not in message
