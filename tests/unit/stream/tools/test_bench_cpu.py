"""The end-to-end bench's CPU figures, read from /proc for a process and its main thread."""

from __future__ import annotations

import os
import threading
import time

from stream.tools.bench.end_to_end import cpu_seconds


def test_cpu_seconds_count_the_process_and_its_main_thread_apart():
    def spin() -> None:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass

    before = cpu_seconds(os.getpid())
    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()
    after = cpu_seconds(os.getpid())
    assert after["process"] - before["process"] >= 0.2  # the other thread's CPU counts in all
    assert after["main"] - before["main"] < after["process"] - before["process"]
    assert cpu_seconds(2**22 + 12345) == {}  # no such process
