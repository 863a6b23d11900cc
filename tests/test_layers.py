"""The package's layers import only downward, and nothing imports in a cycle.

Read from the source with ``ast``, TYPE_CHECKING imports included: a cycle hidden from
the interpreter is still a cycle for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_mcp_http"

#: Each layer and the layers it may import, lowest first.
LAYERS = {
    "protocol": set(),
    "server": {"protocol"},
    "auth": {"protocol"},
    "cluster": {"protocol"},
    "transport": {"protocol", "server", "auth", "cluster"},
    "client": {"protocol"},
    "serving": {"protocol", "server", "transport", "client", "cluster"},
}
#: What a layer must never import, at any depth of its own modules.
NEVER = {
    "protocol": ("trio", "hypercorn", "anyio", "h11", "h2"),
    "server": ("hypercorn",),
    "auth": ("hypercorn",),
    "cluster": ("hypercorn",),
    "transport": ("hypercorn",),
    "client": ("hypercorn",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(package-internal modules, top-level external packages) that ``path`` imports."""
    tree = ast.parse(path.read_text())
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    internal: set[str] = set()
    external: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (internal if alias.name.startswith("trio_mcp_http") else external).add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
                # ``from .pkg import x``: ``x`` may be a module of ``pkg`` or a name in it.
                for alias in node.names:
                    module = f"{target}.{alias.name}"
                    internal.add(module if module in MODULES else target)
            elif node.module and node.module.startswith("trio_mcp_http"):
                internal.add(node.module)
            elif node.module:
                external.add(node.module)
    return internal, {name.split(".")[0] for name in external}


MODULES = {
    _module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in path.parts
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_layers_exist_and_hold_every_module() -> None:
    assert set(LAYERS) <= {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    top_level = {m for m in MODULES if m.count(".") == 1 and _layer(m) is None}
    # Outside the layers: only the public face, the ``python -m`` entry and the demo.
    assert top_level <= {"trio_mcp_http.__main__", "trio_mcp_http.demo"}, top_level


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_imports_go_only_downward(module: str) -> None:
    layer = _layer(module)
    assert layer is not None
    internal, external = _imports(MODULES[module])
    for target in internal:
        other = _layer(target)
        assert other is not None or target == "trio_mcp_http", f"{module} imports {target}"
        assert other in LAYERS[layer] | {layer}, f"{module} ({layer}) imports {target} ({other})"
    forbidden = set(NEVER.get(layer, ())) & external
    assert not forbidden, f"{module} ({layer}) imports {sorted(forbidden)}"


def test_no_import_cycles() -> None:
    graph = {
        module: {t for t in _imports(path)[0] if t in MODULES and t != module}
        for module, path in MODULES.items()
    }
    # The package's __init__ re-exports everything: it is the top, not a node in a cycle.
    graph = {m: {t for t in ts if t != "trio_mcp_http"} for m, ts in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_protocol_layer_runs_without_trio() -> None:
    """The sans-IO layer is importable with trio, hypercorn and anyio hidden."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('trio', 'hypercorn', 'anyio'):\n"
        "    sys.modules[name] = None\n"
        "import importlib, pkgutil, types\n"
        "sys.modules['trio_mcp_http'] = types.ModuleType('trio_mcp_http')\n"
        f"sys.modules['trio_mcp_http'].__path__ = [{str(PACKAGE)!r}]\n"
        "import trio_mcp_http.protocol as p\n"
        "for info in pkgutil.iter_modules(p.__path__):\n"
        "    importlib.import_module('trio_mcp_http.protocol.' + info.name)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
