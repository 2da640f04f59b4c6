"""Progress to a file or a pipe: the finished bar once, no carriage-return redraws."""

from stream.progress import progress


def test_a_bar_to_a_pipe_is_one_final_line_without_redraws(capsys):
    with progress("behaviors", 3000) as update:
        for done in range(0, 3001, 500):
            update(done)
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 1
    assert err.startswith("behaviors ") and "3000/3000" in err


def test_a_bar_that_stops_early_shows_where_it_stopped(capsys):
    try:
        with progress("items", 10) as update:
            update(4)
            raise SystemExit("broker gone")
    except SystemExit:
        pass
    assert "4/10" in capsys.readouterr().err
