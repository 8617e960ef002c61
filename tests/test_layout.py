"""The package's shape: a short constructor, each gradient step in its algorithm's own file, no import cycle."""

from __future__ import annotations

import ast
import inspect
import pathlib

import pytest

import sb3_metasaclag
from sb3_metasaclag import RCPOSAC, MetaSACLag, RCPOMetaSAC, SACLag

PACKAGE = pathlib.Path(sb3_metasaclag.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(tree: ast.Module) -> list[str]:
    """Every module the module imports, at its top or inside a function (a deferred import is still a dependency), but
    not under ``if TYPE_CHECKING:``; ``from a import b`` names ``a.b`` when b is a submodule, else ``a``."""
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for statement in node.body
        for child in ast.walk(statement)
    }
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.append(submodule if submodule in MODULES else node.module)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (its own parent packages left out: Python imports a module's parents
    before the module, so importing one of them from inside is no cycle)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        imported = set(_imports(ast.parse(path.read_text()))) & set(MODULES)
        graph[name] = {other for other in imported if other != name and not name.startswith(f"{other}.")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                return stack[stack.index(other) :] + [other]
            if other not in state and (cycle := visit(other)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycle_inside_the_package():
    graph = import_graph()
    assert "sb3_metasaclag.metasaclag.metasaclag" in graph["sb3_metasaclag.metasaclag.reference"]
    assert find_cycle(graph) is None, find_cycle(graph)
    # The check finds a cycle where there is one.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_metasaclag_takes_at_most_40_arguments():
    parameters = list(inspect.signature(MetaSACLag.__init__).parameters)[1:]
    assert len(parameters) <= 40, parameters


@pytest.mark.parametrize("algorithm, path", [(MetaSACLag, "metasaclag/metasaclag.py"), (SACLag, "saclag/saclag.py")])
def test_each_gradient_step_is_written_out_in_its_algorithms_file(algorithm, path):
    assert algorithm.train.__qualname__ == f"{algorithm.__name__}.train"
    assert pathlib.Path(inspect.getsourcefile(algorithm.train)) == PACKAGE / path
    # The RCPO variants change the penalised value, not the gradient step.
    variant = RCPOMetaSAC if algorithm is MetaSACLag else RCPOSAC
    assert variant.train is algorithm.train
