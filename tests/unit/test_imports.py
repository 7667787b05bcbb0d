"""The package's import graph, read from the source with ``ast`` (nothing is imported).

* No import cycle among the package's modules, counting imports inside functions too (a lazy
  import only hides a cycle).
* The runtime (everything but ``tf_convgrad.tools`` and the command line, ``__main__``, which
  dispatches to the tools) never imports the tools.
* The modules the GPU harness and the float64 reference load without TensorFlow import none,
  directly or through the package modules they import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "tf_convgrad"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / "python" / PACKAGE
TF_FREE = (
    "tf_convgrad._geometry",
    "tf_convgrad._optable",
    "tf_convgrad.tools.metrics",
    "tf_convgrad.tools.reference",
)
TF_ROOTS = {"tensorflow", "keras", "tf_keras"}


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _read_package() -> tuple[dict[str, Path], dict[str, set[str]], dict[str, set[str]]]:
    """Modules (name -> path), their imports of package modules and of anything else (roots)."""
    modules = {_module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}
    internal: dict[str, set[str]] = {name: set() for name in modules}
    external: dict[str, set[str]] = {name: set() for name in modules}

    def resolve(name: str) -> str:
        """The package module ``name`` names: itself, or the module that defines it."""
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    base = ".".join(filter(None, [base, node.module]))
                else:
                    base = node.module or ""
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target == PACKAGE or target.startswith(PACKAGE + "."):
                    internal[name].add(resolve(target))
                elif target.split(".")[0] != "__future__":
                    external[name].add(target.split(".")[0])
    return modules, internal, external


MODULES, INTERNAL, EXTERNAL = _read_package()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a cycle (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _closure(start: str) -> set[str]:
    """``start`` and every package module it imports, directly or not."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(INTERNAL[name])
    return seen


def test_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("tf_convgrad.ops", "tf_convgrad._xla"),  # from . import _loader, _xla
        ("tf_convgrad.nn", "tf_convgrad._conv2d_blocks"),  # from ._conv2d_blocks import ...
        ("tf_convgrad", "tf_convgrad._loader"),  # inside build_info()
        ("tf_convgrad.__main__", "tf_convgrad.tools.bench"),  # inside build_parser()
        ("tf_convgrad.tools.reference", "tf_convgrad._geometry"),  # from .._geometry import
    ],
)
def test_reader_sees_every_kind_of_import(importer, imported):
    assert imported in INTERNAL[importer], sorted(INTERNAL[importer])


def test_no_import_cycle():
    cycles = _cycles(INTERNAL)
    assert not cycles, "import cycles among the package's modules: " + "; ".join(
        " <-> ".join(cycle) for cycle in cycles
    )


def test_runtime_never_imports_the_tools():
    runtime = [
        name
        for name in MODULES
        if not name.startswith(f"{PACKAGE}.tools") and name != f"{PACKAGE}.__main__"
    ]
    assert len(runtime) > 10, runtime
    offenders = {
        name: sorted(t for t in INTERNAL[name] if t.startswith(f"{PACKAGE}.tools"))
        for name in runtime
    }
    assert not {name: tools for name, tools in offenders.items() if tools}


@pytest.mark.parametrize("module", TF_FREE)
def test_module_imports_no_tensorflow(module):
    reached = {name: EXTERNAL[name] & TF_ROOTS for name in _closure(module)}
    assert not {name: roots for name, roots in reached.items() if roots}
