"""A worker where neither onnxruntime package is installed (both are extras) says which to install."""

import os
import subprocess
import sys

import pytest

from stream.factories import NO_RUNTIME

# sys.modules[name] = None makes `import name` fail and find_spec(name) return None, as if not installed.
WITHOUT_ONNXRUNTIME = "import sys; sys.modules['onnxruntime'] = None; from stream.cli import main; sys.exit(main([%r]))"


@pytest.mark.parametrize("command", ["worker", "replay"])
def test_a_worker_without_onnxruntime_exits_with_one_line_naming_the_extras(command):
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_ONNXRUNTIME % command], capture_output=True, text=True, timeout=120,
        # were the check missing, the worker would look for a broker where none is, and give up at once
        env={**os.environ, "SEGSTREAM_BOOTSTRAP": "127.0.0.1:9", "SEGSTREAM_BROKER_WAIT_S": "0"},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [NO_RUNTIME]
    assert "segstream[cpu]" in NO_RUNTIME and "segstream[gpu]" in NO_RUNTIME
