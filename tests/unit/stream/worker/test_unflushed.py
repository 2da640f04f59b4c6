"""The marks of partitions a data dir is writing (stream/worker/unflushed.py)."""

import json
import os
import signal
import subprocess
import sys

from stream.worker.unflushed import FILE_NAME, UnflushedPartitions


def test_marks_are_added_removed_and_kept_on_disk(tmp_path):
    marks = UnflushedPartitions(tmp_path / "app")
    assert marks.marked() == set()
    marks.mark({0, 2})
    marks.mark({3})
    assert UnflushedPartitions(tmp_path / "app").marked() == {0, 2, 3}
    marks.wiped({2})
    assert marks.marked() == {0, 3}
    marks.handed_over()
    assert json.loads((tmp_path / "app" / FILE_NAME).read_text()) == {"partitions": []}


def test_a_hand_over_clears_only_this_processs_marks(tmp_path):
    UnflushedPartitions(tmp_path).mark({1, 3})  # a worker that died
    after_restart = UnflushedPartitions(tmp_path)
    after_restart.handed_over()  # the first rebalance of the new process revokes nothing it wrote
    assert after_restart.marked() == {1, 3}
    after_restart.wiped({1})
    after_restart.mark({0})
    after_restart.handed_over()
    assert after_restart.marked() == {3}


def test_a_killed_writer_leaves_its_marks(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from stream.worker.unflushed import UnflushedPartitions;"
        f"UnflushedPartitions(Path({str(tmp_path)!r})).mark({{1, 3}}); print('marked', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=os.getcwd())
    assert child.stdout.readline().strip() == b"marked"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert UnflushedPartitions(tmp_path).marked() == {1, 3}
