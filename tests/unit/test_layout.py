"""The tree shows the flow: these checks keep its seams (README, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 450
MAX_SHELL_FUNCTION_LINES = 60
KAFKA_CLIENTS = ("faust", "aiokafka", "confluent_kafka", "mode")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*ROOT.glob("stream/**/*.py"), *ROOT.glob("models/**/*.py")]):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


MODULES = modules()


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_imports(name: str) -> set[str]:
    return {i for i in imports(MODULES[name]) if i in MODULES and i != name}


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_models_know_nothing_of_stream_and_config_nothing_of_models():
    for name in MODULES:
        if under(name, "models"):
            assert not {i for i in imports(MODULES[name]) if under(i, "stream")}, name
    assert not {i for i in imports(MODULES["stream.config"]) if under(i, "models")}


def test_the_core_is_pure_and_neither_core_nor_worker_reaches_into_tools_or_datasets():
    for name in MODULES:
        if under(name, "stream.core"):
            assert not {i for i in imports(MODULES[name]) if i.split(".")[0] in KAFKA_CLIENTS}, name
            assert not {i for i in project_imports(name) if under(i, "stream.worker", "stream.kafka")}, name
        if under(name, "stream.core", "stream.worker", "stream.contract"):
            assert not {i for i in project_imports(name) if under(i, "stream.tools", "stream.datasets")}, name


def test_no_import_cycles():
    graph = {name: project_imports(name) for name in MODULES}
    visiting, done = set(), set()

    def visit(name: str, path: list[str]) -> None:
        if name in done:
            return
        if name in visiting:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        visiting.add(name)
        for dep in sorted(graph[name]):
            visit(dep, path + [name])
        visiting.discard(name)
        done.add(name)

    for name in graph:
        visit(name, [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_small(name: str):
    assert len(MODULES[name].read_text().splitlines()) <= MAX_MODULE_LINES


def test_the_faust_shell_is_thin():
    for name, path in MODULES.items():
        if not under(name, "stream.worker"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_SHELL_FUNCTION_LINES, f"{name}.{node.name}: {length} lines"


def test_test_files_have_names_of_their_own():
    """Test folders are not packages: pytest imports two files of one name as one module and
    stops collecting (seen only when unit and integration tests run together, as in CI)."""
    names = [path.name for path in (Path(__file__).resolve().parents[1]).rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
