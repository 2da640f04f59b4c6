"""The soak's RSS arithmetic and report (stream/tools/bench/soak.py)."""

from __future__ import annotations

import os

import pytest

from stream.tools.bench.soak import Sample, print_soak_section, rss_mb, summarise


def samples(rss: list[float], every_s: float = 10.0) -> list[Sample]:
    return [Sample(n * every_s, mb, n * 100) for n, mb in enumerate(rss)]


def test_spread_over_the_second_half_is_max_minus_min_over_its_mean():
    # 0..100 s; the second half is t >= 50 s: 400, 410, 390, 400, 400, 400 (mean 400)
    result = summarise(samples([300, 350, 370, 380, 390, 400, 410, 390, 400, 400, 400]), seconds=100)
    assert (result["start_mb"], result["half_mb"], result["end_mb"]) == (300, 400, 400)
    assert (result["second_half_min_mb"], result["second_half_max_mb"]) == (390, 410)
    assert result["second_half_mean_mb"] == pytest.approx(400)
    assert result["second_half_spread_pct"] == pytest.approx(5.0)
    assert result["passed"]
    assert result["first_half_mb_per_min"] > 0 and result["second_half_mb_per_min"] == pytest.approx(0, abs=30)


def test_steady_growth_fails_the_bound_and_the_slopes_show_it():
    result = summarise(samples([300 + 10 * n for n in range(11)]), seconds=100)  # +10 MB every 10 s
    assert result["second_half_spread_pct"] == pytest.approx(50 / 375 * 100)  # 350..400 MB, mean 375
    assert not result["passed"]
    assert result["first_half_mb_per_min"] == pytest.approx(60) and result["second_half_mb_per_min"] == pytest.approx(60)


def test_the_bound_is_inclusive_and_one_sample_is_its_own_second_half():
    assert summarise(samples([100, 100, 95, 105]), seconds=20, bound_pct=10.0)["passed"]
    lone = summarise([Sample(0.0, 250.0, 0)], seconds=60)
    assert lone["second_half_spread_pct"] == 0 and lone["first_half_mb_per_min"] is None
    with pytest.raises(ValueError):
        summarise([], seconds=60)


def test_rss_of_this_process_is_read_from_proc():
    assert 1 < rss_mb(os.getpid()) < 100_000


def test_report_says_pass_or_fail_with_the_figures(capsys):
    rss = summarise(samples([300, 350, 370, 380, 390, 400, 410, 390, 400, 400, 400]), seconds=100)
    result = {
        "store": "rocksdb://", "partitions": 4, "seconds": 100, "achieved_per_s": 999.0, "target_per_s": 1000.0,
        "users": 20_000, "produced": 100_000, "applied": 100_000, "dead_letters": 0, "held_behaviours": 0,
        "samples": [], "rss": rss,
    }
    print_soak_section(result)
    out = capsys.readouterr().out
    assert "applied 100,000 of 100,000 produced" in out
    assert "start 300 MB, half 400 MB, end 400 MB" in out
    assert "spread 5.0% of its mean 400 MB: PASS (bound 10%)" in out
    assert "fell behind" not in out
    print_soak_section({**result, "applied": 90_000, "rss": {**rss, "passed": False}})
    out = capsys.readouterr().out
    assert "FAIL (bound 10%)" in out and "fell behind: 10,000 events were not applied" in out
