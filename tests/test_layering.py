"""The house stays walkable: every import of the project's modules (those inside functions included), read with
`ast`, runs one way: entry scripts -> ops/ + scripts/ -> models/<method>/ -> models/core/ -> archs/.

- no import cycle among the project's modules;
- models/core/ imports no method package (nor `models` itself, which imports them all);
- ops/ and scripts/ reach a method package only through its public face (its `__init__`), and no private name
  (`_name`) is imported from another package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("archs", "models", "ops", "scripts")
ENTRY_SCRIPTS = ("main.py", "main_nViewEval.py", "test_early_exit.py")


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Returns {dotted module name: file} of the project's source (packages, scripts, entry scripts)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    for name in ENTRY_SCRIPTS:
        if (root / name).exists():
            modules[name[:-3]] = root / name
    return modules


def _package_of(module: str, path: Path) -> str:
    """The package a module belongs to: itself for a package's __init__, else its parent."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(modules: dict[str, Path]) -> list[tuple[str, str, str | None, int]]:
    """Returns (importer, imported module, imported name or None, line) for every import of a project module,
    wherever it stands in the file (module level, functions, classes, conditionals)."""
    found = []
    for module, path in modules.items():
        package = _package_of(module, path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        found.append((module, alias.name, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                for alias in node.names:
                    target = f"{source}.{alias.name}"
                    if target in modules:  # `from package import submodule`
                        found.append((module, target, None, node.lineno))
                    elif source in modules:
                        found.append((module, source, alias.name, node.lineno))
    return found


def cycles(edges: list[tuple[str, str, str | None, int]]) -> list[list[str]]:
    """Returns the strongly connected components of more than one module (and self-imports): the cycles."""
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan, iterative over the successors of each node
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, successors = work[-1]
            for w in successors:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def method_package(module: str) -> str | None:
    """Returns `models.<method>` for a module of a method package, None for the core and anything else."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "models" and parts[1] != "core":
        return ".".join(parts[:2])
    return None


def violations(root: Path = ROOT) -> list[str]:
    """Returns a line per broken rule (empty: the house is walkable)."""
    modules = project_modules(root)
    edges = imports(modules)
    out = [f"import cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    for importer, target, name, line in edges:
        where = f"{modules[importer].relative_to(root)}:{line}"
        if importer.startswith("models.core") and (target == "models" or method_package(target)):
            out.append(f"{where}: the core imports {target}")
        outside = importer.split(".")[0] in ("ops", "scripts") or importer in [s[:-3] for s in ENTRY_SCRIPTS]
        owner = method_package(target)
        if outside and owner and target != owner:
            out.append(f"{where}: imports {target}, an internal module of {owner} (use its package)")
        if name and name.startswith("_") and not name.startswith("__"):
            if _package_of(importer, modules[importer]) != _package_of(target, modules[target]):
                out.append(f"{where}: imports the private {name} of {target}")
    return out


def test_the_project_has_no_cycle_and_every_import_runs_one_way():
    assert violations() == []


def test_each_rule_is_seen(tmp_path):
    files = {
        "models/__init__.py": "from models import m1\n",
        "models/core/__init__.py": "",
        "models/core/config.py": "def f():\n    from models.m1.model import Net\n",
        "models/m1/__init__.py": "from models.m1.model import Net\n",
        "models/m1/model.py": "from models.core.config import f\n_hidden = 1\nclass Net: ...\n",
        "ops/__init__.py": "",
        "ops/tool.py": "from models.m1.model import _hidden\nfrom models.m1 import Net\n",
        "archs/__init__.py": "",
        "scripts/run.py": "import ops.tool\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = violations(tmp_path)
    assert found == [
        "import cycle: models.core.config <-> models.m1.model",
        "models/core/config.py:2: the core imports models.m1.model",
        "ops/tool.py:1: imports models.m1.model, an internal module of models.m1 (use its package)",
        "ops/tool.py:1: imports the private _hidden of models.m1.model",
    ]
