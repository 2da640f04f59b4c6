"""Why a user is in their segment, from a real worker: GET /users/{id}/explain and
``segstream explain USER`` after a small MovieLens load (k=3)."""

from __future__ import annotations

import subprocess

from kafka_io import cli, load_movielens_slice

from stream.datasets import movielens
from stream.tools.launcher import eventually


def explain_command(settings, user_id: str) -> subprocess.CompletedProcess:
    return cli(settings, "explain", user_id)


def test_explain_over_http_and_the_command_line(settings_for, start_worker):
    settings = settings_for(k=3, seed_users=20, http_token="explain-secret")
    worker = start_worker(settings)
    ratings = load_movielens_slice(settings, worker)
    user_id = ratings[0].user_id
    status, answer = eventually(lambda: worker.get(f"/users/{user_id}/explain"), lambda r: r[1]["nearest"] != [], 60)
    assert status == 200 and answer["user_id"] == user_id

    distances = [n["distance"] for n in answer["nearest"]]
    assert len(distances) == 3 and distances == sorted(distances)
    assert answer["segment"] in {n["segment"] for n in answer["nearest"]}
    assert answer["segment"] == worker.get(f"/users/{user_id}")[1]["segment"]
    assert answer["decision"] in {"nearest", "kept", "moves"} and answer["margin"] == settings.hysteresis
    titles = {m.item_id: movielens.item_event(m)["title"] for m in movielens.movies()[:80]}
    assert answer["items"] and all(i["item_id"] in titles for i in answer["items"])
    assert all(i["title"] == titles[i["item_id"]] for i in answer["items"])
    similarities = [i["similarity"] for i in answer["items"]]
    assert similarities == sorted(similarities, reverse=True)
    assert "is the closest of your items to this segment" in answer["summary"][1]

    run = explain_command(settings, user_id)
    assert run.returncode == 0, run.stderr
    assert f"user {user_id}: segment {answer['segment']}" in run.stdout
    assert answer["summary"][0] in run.stdout and "nearest centroids" in run.stdout

    assert worker.get("/users/nobody-here/explain") == (404, {"error": "unknown user 'nobody-here'"})
    unknown = explain_command(settings, "nobody-here")
    assert unknown.returncode != 0 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == [
        f"segstream explain: unknown user 'nobody-here' (HTTP 404 from {worker.url}/users/nobody-here/explain)"
    ]
