"""The live page's parts that need no worker: its files, its open paths, the enter/exit tallies
and the sample of users the map draws (the page itself: tests/integration/test_live_page.py)."""

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from stream.core.user_state import UserState
from stream.kafka import key_partition
from stream.worker import http_auth
from stream.worker.context import Tallies
from stream.worker.page import ASSETS, STATIC
from stream.worker.store import FaustUserStore


def test_the_page_files_ship_in_the_package_and_are_the_only_open_pages_besides_the_probes():
    for path, (name, _) in ASSETS.items():
        assert (STATIC / name).is_file()
        assert path in http_auth.OPEN_PATHS
    assert not [p for p in http_auth.OPEN_PATHS if p.startswith("/api")]
    html = (STATIC / "index.html").read_text()
    assert "http" not in html.replace("http://www.w3.org", "")  # nothing from the internet


def test_a_move_counts_one_exit_and_one_entry_and_a_stay_counts_nothing():
    tallies = Tallies()
    tallies.moved(None, 1)
    tallies.moved(1, 2)
    tallies.moved(2, None)
    tallies.moved(2, 2)
    assert tallies.entered == {1: 1, 2: 1} and tallies.left == {1: 1, 2: 1}


def user(n: int) -> UserState:
    state = UserState(user_id=f"u{n}")
    state.add_vector(np.eye(4, dtype=np.float32)[n % 4], 1.0, ts=0.0, half_life_s=3600.0)
    return state


def test_the_sample_is_bounded_repeatable_and_only_of_this_workers_partitions():
    table = {f"u{n}".encode(): user(n).to_bytes() for n in range(200)}
    table[b"empty"] = UserState(user_id="empty").to_bytes()  # no vector: not drawn
    held = {0, 1}
    store = FaustUserStore(table, 4, lambda: held)
    first = store.sample(50, scan=10_000)
    assert len(first) == 50
    assert all(key_partition(s.user_id.encode(), 4) in held and s.vector is not None for s in first)
    assert [s.user_id for s in store.sample(50, scan=10_000)] == [s.user_id for s in first]
    assert len(store.sample(1000, scan=20)) <= 20


@pytest.mark.parametrize("debug_views", [False, True])
def test_the_page_is_served_at_the_root_before_faust_own_index_or_statistics(debug_views):
    """Faust mounts its index (or, with debug views, its statistics) at / too; the page's route
    comes first, so it answers."""
    from aiohttp.test_utils import TestClient, TestServer

    from stream.config import Settings
    from stream.worker import page
    from stream.worker.app import new_faust_app

    async def fetch_all() -> dict[str, tuple[int, str, str]]:
        app = new_faust_app(Settings(debug_views=debug_views))
        page.register(SimpleNamespace(app=app))
        app.web.init_server()
        answers = {}
        async with TestClient(TestServer(app.web.web_app)) as client:
            for path in ASSETS:
                response = await client.get(path)
                answers[path] = (response.status, response.content_type, await response.text())
        return answers

    answers = asyncio.run(fetch_all())
    for path, (name, content_type) in ASSETS.items():
        assert answers[path] == (200, content_type, (STATIC / name).read_text())
