"""No import circles among the modules of ``messaging``.

The graph is read from the source with :mod:`ast`: an edge goes from a module to
each ``messaging`` module it imports (``from package import module`` reaches the
module; ``from module import name`` the module). A package's ``__init__`` that
runs before its submodules is not an edge: Python imports parents first anyway.

Two graphs are checked:

- what runs: imports at module level and inside functions (an import moved into
  a function only to break a circle still counts), not under ``TYPE_CHECKING``;
  it has no circle at all;
- with the imports under ``TYPE_CHECKING`` too: the circles there are only
  those listed in :data:`KNOWN_TYPING_CIRCLES`, which issue 16 removes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "messaging"

#: Circles through imports made for type checking only, still there (issue 16:
#: the driver core work removes them; delete each entry as it goes).
KNOWN_TYPING_CIRCLES = {
    frozenset({"messaging.drivers.base", "messaging.poison", "messaging.transport"}),
    frozenset({"messaging.drivers.sqlite.bus", "messaging.drivers.sqlite.reply"}),
    frozenset({"messaging.drivers.sqlite.driver", "messaging.drivers.sqlite.listener"}),
    frozenset({"messaging.drivers.stomp.driver", "messaging.drivers.stomp.listener"}),
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            anchor = package[: len(package) - node.level + 1]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        yield from (f"{base}.{alias.name}" for alias in node.names)
        yield base


def _graph(with_typing: bool) -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        pending: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
        while pending:
            node = pending.pop()
            for child in ast.iter_child_nodes(node):
                if _is_type_checking(child) and not with_typing:
                    continue
                if isinstance(child, ast.ImportFrom):
                    # "from pkg import mod" imports mod; "from mod import name" mod itself.
                    names = list(_imported(child, module, is_package))
                    base, targets = names[-1], names[:-1]
                    found = {t for t in targets if t in modules} or {base}
                else:
                    found = set(_imported(child, module, is_package))
                for name in found:
                    target = resolve(name) if name.startswith("messaging") else None
                    if target and target != module and not module.startswith(target + "."):
                        graph[module].add(target)
                pending.append(child)
    return graph


def _circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: set[frozenset[str]] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.add(frozenset(component))
    return circles


def _show(circles: set[frozenset[str]]) -> str:
    return "; ".join(" <-> ".join(sorted(c)) for c in sorted(circles, key=sorted))


def test_the_graph_sees_imports() -> None:
    graph = _graph(with_typing=False)
    assert "messaging.conf" in graph["messaging.transport"]
    assert "messaging.confhelpers" in graph["messaging.conf"]
    assert "messaging.drivers.rabbit.options" in graph["messaging.drivers.rabbit"]


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == {frozenset({"a", "b", "c"})}


def test_no_import_circle_among_the_modules_that_run() -> None:
    circles = _circles(_graph(with_typing=False))
    assert not circles, f"import circles in messaging/: {_show(circles)}"


def test_no_new_import_circle_through_type_checking_imports() -> None:
    new = _circles(_graph(with_typing=True)) - KNOWN_TYPING_CIRCLES
    assert not new, f"new import circles (with TYPE_CHECKING imports): {_show(new)}"


def test_core_configuration_imports_neither_transport_nor_a_driver() -> None:
    graph = _graph(with_typing=True)
    for module in ("messaging.conf", "messaging.confhelpers"):
        reached = {
            m for m in graph[module] if m.startswith(("messaging.drivers", "messaging.transport"))
        }
        assert not reached, f"{module} imports {sorted(reached)}"
