"""The package's architecture as a test: imports only point down the layers, and no module cycles.

Every module of ``lightseg_tf`` is parsed with ``ast`` (module-level AND function-level imports)
and mapped to its layer by its folder; an import of a higher layer, or a cycle between modules,
fails with the offending file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lightseg_tf"

# Lowest first. A module may import its own layer or any lower one.
LAYERS = [
    {"errors", "config", "core"},
    {"anatomy"},
    {"objectives"},
    {"data"},
    {"runs"},
    {"models"},
    {"training"},
    {"deploy"},
    {"evaluation"},
    {"pipelines"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """Layer rank of ``lightseg_tf.<top>...``; None for the package root ``lightseg_tf`` itself."""
    parts = module.split(".")
    return RANK[parts[1]] if len(parts) > 1 else None


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    """``(imported lightseg_tf module, line)`` for every import in the file, at any depth."""
    found = []
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "lightseg_tf"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lightseg_tf":
                continue
            found.append((target, node.lineno))
            for alias in node.names:  # `from lightseg_tf.data import tfdata` imports a submodule
                found.append((f"{target}.{alias.name}", node.lineno))
    return found


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, list[tuple[str, int]]], dict[str, Path]]:
    """Module -> the package modules it imports (resolved to existing modules), and module -> file."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        edges = []
        for target, line in imports_of(path, module):
            while target and target not in files:  # `pkg.mod.func` -> `pkg.mod`
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.append((target, line))
        graph[module] = sorted(set(edges))
    return graph, files


def upward_imports(root: Path = PACKAGE) -> list[str]:
    graph, files = import_graph(root)
    bad = []
    for module, edges in graph.items():
        here = layer_of(module)
        if here is None:
            continue
        for target, line in edges:
            there = layer_of(target)
            if there is not None and there > here:
                bad.append(f"{files[module].relative_to(root.parent)}:{line}: {module} (layer {here}) "
                           f"imports {target} (layer {there})")
    return bad


def cycles(root: Path = PACKAGE) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    graph, _ = import_graph(root)
    adj = {m: sorted({t for t, _ in edges if t in graph}) for m, edges in graph.items()}
    # A package __init__ re-exporting its submodules is not a cycle of behaviour: drop parent->child edges.
    adj = {m: [t for t in ts if not t.startswith(m + ".")] for m, ts in adj.items()}
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in adj:
        if v not in index:
            visit(v)
    return out


def test_every_top_level_folder_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())) and p.name != "__init__.py"}
    assert tops <= set(RANK), f"give these a layer in LAYERS: {sorted(tops - set(RANK))}"


def test_at_most_six_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 6, top


def test_imports_only_point_down():
    assert upward_imports() == []


def test_no_import_cycles():
    assert cycles() == []


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "lightseg_tf"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_inside_a_function_is_caught(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "", "data/__init__.py": "", "evaluation/__init__.py": "",
        "evaluation/evaluate.py": "X = 1\n",
        "data/split.py": "def f():\n    from lightseg_tf.evaluation.evaluate import X\n    return X\n",
    })
    bad = upward_imports(root)
    assert len(bad) == 1 and "data/split.py:2" in bad[0] and "lightseg_tf.evaluation.evaluate" in bad[0]


def test_a_relative_upward_import_is_caught(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "", "models/__init__.py": "", "training/__init__.py": "",
        "training/trainer.py": "X = 1\n", "models/unet.py": "from ..training import trainer\n",
    })
    assert any("lightseg_tf.training" in b for b in upward_imports(root))


def test_a_cycle_inside_one_layer_is_caught(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "", "training/__init__.py": "",
        "training/a.py": "from lightseg_tf.training.b import Y\nX = 1\n",
        "training/b.py": "def g():\n    from lightseg_tf.training import a\nY = 2\n",
    })
    assert upward_imports(root) == []
    assert cycles(root) == [["lightseg_tf.training.a", "lightseg_tf.training.b"]]


@pytest.mark.parametrize("module", ["lightseg_tf.core.io", "lightseg_tf.cli.train"])
def test_layers_of_real_modules(module):
    assert layer_of(module) == RANK[module.split(".")[1]]
