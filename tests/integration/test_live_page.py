"""The live page (GET /) in a real browser: headless Chromium loads it from a real worker after a
small load, the map draws, and the segment rows in the DOM are those of /api/segments."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from kafka_io import produce

from stream.datasets import movielens
from stream.tools.launcher import eventually

SCREENSHOT_COPY = Path("/tmp/segstream-live-page.png")
TOKEN = "live-page-secret"


class PageDom(HTMLParser):
    """The parts of the dumped DOM the test reads: segment rows, their labels, the map."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, str]] = []
        self.map_drawn = ""
        self.user_dots = 0
        self.centroids = 0
        self._in_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "tr" and "data-segment" in a:
            self.rows.append((int(a["data-segment"] or -1), ""))
        elif tag == "td" and "label" in classes:
            self._in_label = True
        elif tag == "svg" and a.get("id") == "map":
            self.map_drawn = a.get("data-drawn") or ""
        elif tag == "circle":
            self.user_dots += "user" in classes
            self.centroids += "centroid" in classes

    def handle_data(self, data: str) -> None:
        if self._in_label:
            segment, label = self.rows[-1]
            self.rows[-1] = (segment, label + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_label = False


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--window-size=1280,900", "--virtual-time-budget=8000"]
    return subprocess.run([shutil.which("chromium") or "chromium", *flags, *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_the_live_page_draws_the_map_and_lists_the_segments_in_a_real_browser(settings_for, start_worker, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it; it could not here)")
    settings = settings_for(k=3, seed_users=30, seed_idle_s=2, http_token=TOKEN)
    worker = start_worker(settings)
    movies = movielens.movies()[:40]
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movies])
    worker.wait_until(lambda h: h["catalogue_items"] == len(movies), 120, "the catalogue")
    ids = {m.item_id for m in movies}
    rates = [r for r in movielens.ratings() if r.item_id in ids][:400]
    produce(settings, settings.topic_behaviors, [(r.user_id, movielens.behavior_event(r)) for r in rates])
    worker.wait_until(lambda h: h["counters"]["applied"] == len(rates), 120, "the ratings")
    eventually(lambda: worker.get("/api/segments")[1], lambda s: s["seeded"], 60)
    worker.settled(quiet_s=3.0, timeout_s=120)

    # The page and its files hold no data and need no token; the data does.
    with urllib.request.urlopen(worker.url + "/", timeout=5) as response:
        assert response.status == 200 and b'<svg id="map"' in response.read()
    assert worker.get("/api/segments")[0] == 200
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(worker.url + "/api/segments", timeout=5)

    page = f"{worker.url}/#token={TOKEN}"
    dom = PageDom()
    dom.feed(chromium("--dump-dom", page).stdout)
    expected = worker.get("/api/segments")[1]["segments"]
    assert dom.map_drawn == "true"
    assert dom.centroids == 3 and dom.user_dots > 0
    assert dom.rows == [(s["id"], s["label"]) for s in expected]

    shot = tmp_path / "live-page.png"
    chromium(f"--screenshot={shot}", page)
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, SCREENSHOT_COPY)
