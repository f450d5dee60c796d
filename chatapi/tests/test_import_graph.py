"""The import graph of the product code, read from its source (docs/architecture.md): which app
may import which, no cycles inside an app, and test support only in tests."""

import ast
from collections.abc import Iterator
from pathlib import Path

from testsupport.servers import REPO

APPS = ("accounts", "chatapi", "conversations", "messaging", "usage")
OURS = (*APPS, "testsupport", "bench")


def _product_modules() -> Iterator[tuple[str, Path]]:
    """Every module of the apps but their tests and migrations, as (dotted name, path)."""
    for app in APPS:
        for path in sorted((REPO / app).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if "tests" in parts or "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """The modules of ours that ``path`` imports, each with whether the import is at the top
    level (not inside a function)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in OURS:
                yield name, id(node) in top_level


MODULES = dict(_product_modules())


def _graph() -> dict[str, set[str]]:
    """Module -> the product modules it imports (``from a import b`` counts ``a.b`` when that
    is a module, else ``a``)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        graph[name] = {target for target, _ in _imports(path) if target in MODULES}
    return graph


def _app(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def test_apps_import_only_the_apps_below_them() -> None:
    # accounts is identity; conversations the stored record; messaging the live turn; usage
    # the money; chatapi the project's infrastructure, which imports no app.
    allowed = {
        "chatapi": {"chatapi"},
        "accounts": {"accounts", "chatapi"},
        "usage": {"usage", "accounts", "chatapi"},
        "conversations": {"conversations", "accounts", "chatapi", "usage"},
        "messaging": {"messaging", "conversations", "accounts", "chatapi", "usage"},
    }
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _app(target) not in allowed[_app(module)]
    )

    assert wrong == []


def test_the_provider_layer_imports_no_app_of_ours() -> None:
    # The project's infrastructure (chatapi: metrics) is not an app.
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module.startswith("messaging.llm")
        for target in targets
        if not target.startswith(("messaging.llm", "chatapi"))
    )

    assert wrong == []


def test_no_import_cycle_inside_an_app() -> None:
    graph = _graph()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if _app(target) != _app(module):
                continue
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif len(path) < 40:
                visit(target, [*path, target])

    for module in sorted(graph):
        visit(module, [module])

    assert cycles == []


def test_product_code_imports_our_modules_at_the_top_level_only() -> None:
    # A function-level import of our own code is how a cycle hides; optional third-party
    # packages (pgserver) may still be imported where they are needed, and an AppConfig's
    # ready() is where Django wants an app's registrations imported.
    inside_functions = sorted(
        f"{name}: {target}"
        for name, path in MODULES.items()
        if not name.endswith(".apps")
        for target, top_level in _imports(path)
        if not top_level
    )

    assert inside_functions == []


def test_no_product_module_imports_test_support() -> None:
    offenders = sorted(
        f"{name}: {target}"
        for name, path in MODULES.items()
        for target, _ in _imports(path)
        if target.split(".")[0] == "testsupport" or ".tests" in target
    )

    assert offenders == []
