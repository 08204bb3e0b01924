"""The import rule of docs/architecture.md, enforced: data flows one way through the layers.

Every ``import`` of an ``iomt_ids`` module anywhere in a file counts (also those inside
functions and under ``TYPE_CHECKING``): a deferred import that climbs a layer is still a
climb. A package may import its own modules and those of lower layers; packages of the
same layer are independent of each other. Inside a package, modules must not import
each other in a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "iomt_ids"

#: Lowest first; keep in step with the table in docs/architecture.md.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exceptions", "_lazy"),
    ("runtime",),
    ("features",),
    ("data",),
    ("training",),
    ("models",),
    ("artifacts",),
    ("evaluation", "export", "explain"),
    ("scoring",),
    ("adaptation",),
    ("detection", "serving", "lab"),
    ("workflows",),
    ("cli",),
)
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported iomt_ids module) for every import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "iomt_ids":
                out += [(node.lineno, f"iomt_ids.{a.name}") for a in node.names]
            elif node.module.startswith("iomt_ids."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("iomt_ids.")]
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


FILES = sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


def test_every_package_has_a_layer() -> None:
    pkgs = {_package(_module_name(p)) for p in FILES}
    assert pkgs == set(RANK), f"packages without a layer: {sorted(pkgs - set(RANK))}"


def test_no_module_imports_a_higher_layer_or_a_sibling() -> None:
    bad = []
    for path in FILES:
        src_pkg = _package(_module_name(path))
        for line, target in _imports(path):
            tgt_pkg = _package(target)
            if tgt_pkg == src_pkg or tgt_pkg not in RANK:
                continue
            if RANK[tgt_pkg] >= RANK[src_pkg]:
                how = "a sibling" if RANK[tgt_pkg] == RANK[src_pkg] else "a higher layer"
                bad.append(f"{path.relative_to(SRC.parent)}:{line} imports {target} ({how})")
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)


def test_no_import_cycles_inside_a_package() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    known = {_module_name(p) for p in FILES}
    for path in FILES:
        mod = _module_name(path)
        for _, target in _imports(path):
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != mod and _package(target) == _package(mod) and target != f"iomt_ids.{_package(mod)}":
                graph[mod].add(target)
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_rule_catches_a_climb(tmp_path: Path) -> None:
    # the check itself can fail: a models module importing the bundle layer is reported
    f = tmp_path / "bad.py"
    f.write_text("def f():\n    from iomt_ids.artifacts import load_bundle\n")
    ((line, target),) = _imports(f)
    assert (line, target) == (2, "iomt_ids.artifacts")
    assert RANK[_package(target)] > RANK["models"]


@pytest.mark.parametrize("layer", LAYERS)
def test_architecture_doc_lists_every_layer(layer: tuple[str, ...]) -> None:
    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    for pkg in layer:
        assert f"`{pkg}`" in doc, f"docs/architecture.md does not describe `{pkg}`"
