"""pygan's modules import only downward: the floors, and no import cycles.

Reads pygan's source with :mod:`ast` (nothing is imported): every ``import`` and ``from ... import``,
at module level or inside a function, is an edge of the module graph. ``from pygan.x import y`` is an
edge to ``pygan.x.y`` when ``y`` is a submodule, else to ``pygan.x``; relative imports are resolved
against the importing module. The package root ``pygan`` (the facade: it re-exports from several
floors) is exempt both ways: edges from it and to it are not checked.

Floors, bottom to top: a module may import its own floor or a lower one.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "pygan"

# Longest matching prefix wins. pygan.amp imports only pygan.errors and pygan.graphs only pygan.amp
# and pygan.data.core, so the floors below hold for them as they are.
FLOORS: dict[str, int] = {
    "pygan._ext": 0,
    "pygan.errors": 0,
    "pygan.amp": 1,
    "pygan.data": 1,
    "pygan.ops": 2,
    "pygan.backbones": 3,
    "pygan.nn": 4,
    "pygan.metrics": 5,
    "pygan.models": 6,
    "pygan.graphs": 6,
    "pygan.runs": 7,
    "pygan.evaluate": 8,
    "pygan.train": 8,
    "pygan.export": 9,
    "pygan.cli": 10,
    "pygan.__main__": 10,
}

ROOT = "pygan"


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package: name -> source file."""
    return {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(module: str, path: Path, modules: set[str]) -> list[tuple[str, int]]:
    """(imported pygan module, line) for every import statement in ``path``, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    edges: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    edges.append((alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            else:
                base = node.module or ""
            if base != ROOT and not base.startswith(ROOT + "."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                edges.append((sub if sub in modules else base, node.lineno))
    return edges


def build_graph(files: dict[str, Path]) -> dict[str, list[tuple[str, int]]]:
    """module -> [(imported module, line)], over the package's modules (``files``:
    :func:`discover`'s answer), the root excluded. Each file is parsed once."""
    modules = set(files)
    graph: dict[str, list[tuple[str, int]]] = {}
    for mod, path in files.items():
        if mod == ROOT:
            continue
        graph[mod] = [
            (dst, line) for dst, line in imports_of(mod, path, modules) if dst != ROOT and dst != mod
        ]
    return graph


def floor_of(module: str) -> int | None:
    best = None
    for prefix, floor in FLOORS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, floor)
    return None if best is None else best[1]


def upward_edges(graph, files, package_dir: Path = PACKAGE_DIR) -> list[str]:
    out = []
    for src, edges in sorted(graph.items()):
        fs = floor_of(src)
        for dst, line in edges:
            fd = floor_of(dst)
            if fs is not None and fd is not None and fd > fs:
                rel = files[src].relative_to(package_dir.parent).as_posix()
                out.append(f"{rel}:{line}: {src} (floor {fs}) imports {dst} (floor {fd})")
    return out


def find_cycle(graph: dict[str, list[tuple[str, int]]]) -> list[str] | None:
    """A concrete import cycle, ``[a, b, ..., a]`` with each module importing the next, starting at
    its alphabetically first module (so the failure message is stable); None when there is none."""
    # TopologicalSorter wants node -> predecessors: a module's imports come before it.
    sorter = TopologicalSorter({m: sorted({d for d, _ in e if d in graph}) for m, e in graph.items()})
    try:
        sorter.prepare()
    except CycleError as exc:
        # args[1]: each node precedes the next, i.e. is imported by it; reversed: each imports the next
        ring = list(reversed(exc.args[1]))[:-1]
        i = ring.index(min(ring))
        ring = ring[i:] + ring[:i]
        return [*ring, ring[0]]
    return None


# ---------------------------------------------------------------- the checker can fail


def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pygan"
    for rel, text in files.items():
        p = pkg / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return pkg


def test_checker_sees_nested_relative_and_submodule_imports(tmp_path):
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "from pygan import cli\n",
            "errors.py": "",
            "metrics/__init__.py": "from .frechet import fid\n",
            "metrics/frechet.py": "def fid():\n    from pygan.runs import load_run\n",
            "metrics/nrds.py": "from .. import nn\nfrom . import frechet\n",
            "nn/__init__.py": "import pygan.metrics.nrds\n",
            "train.py": "from pygan import errors, __version__\n",
            "cli.py": "",
        },
    )
    files = discover(pkg)
    graph = build_graph(files)
    assert "pygan" not in graph
    assert graph["pygan.metrics"] == [("pygan.metrics.frechet", 1)]
    assert graph["pygan.metrics.frechet"] == [("pygan.runs", 2)]  # inside a function
    assert graph["pygan.metrics.nrds"] == [("pygan.nn", 1), ("pygan.metrics.frechet", 2)]
    assert graph["pygan.nn"] == [("pygan.metrics.nrds", 1)]
    assert graph["pygan.train"] == [("pygan.errors", 1)]  # the root (for __version__) is exempt
    cycle = find_cycle(graph)
    assert sorted(set(cycle)) == ["pygan.metrics.nrds", "pygan.nn"]
    assert cycle == ["pygan.metrics.nrds", "pygan.nn", "pygan.metrics.nrds"]
    ups = upward_edges(graph, files, pkg)
    assert any("metrics/frechet.py:2" in u and "(floor 5)" in u and "(floor 7)" in u for u in ups), ups
    assert any("nn/__init__.py:1" in u and "pygan.metrics.nrds (floor 5)" in u for u in ups), ups


# ---------------------------------------------------------------- pygan itself

FILES = discover()
GRAPH = build_graph(FILES)


def test_every_module_has_a_floor():
    missing = [m for m in GRAPH if floor_of(m) is None]
    assert not missing, f"modules without a floor in FLOORS: {missing}"


def test_no_upward_imports():
    ups = upward_edges(GRAPH, FILES)
    assert not ups, "imports from a lower floor to a higher one:\n" + "\n".join(ups)


def test_no_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle:\n" + " -> ".join(cycle)


# Inside an op folder (pygan/ops/<op>/): the public module (__init__) sits on top; the Triton kernels
# may use the contract and the reference; the contract only the reference; the reference nothing of
# the op's. Shared helpers (pygan/ops/_*.py) sit below every op folder.
_OP_PART_RANK = {"reference": 0, "contract": 1, "triton": 2, "cases": 3}


def op_folder_violations(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    bad = []
    for mod, edges in sorted(graph.items()):
        deps = {d for d, _ in edges}
        parts = mod.split(".")
        if len(parts) < 3 or parts[:2] != ["pygan", "ops"]:
            continue
        if parts[2].startswith("_"):  # a shared helper: no op folder above it
            bad += [
                f"{mod} imports {d}"
                for d in sorted(deps)
                if d.startswith("pygan.ops.") and not d.split(".")[2].startswith("_")
            ]
            continue
        if len(parts) != 4 or parts[3] not in _OP_PART_RANK:
            continue
        folder, rank = ".".join(parts[:3]), _OP_PART_RANK[parts[3]]
        for d in sorted(deps):
            if d == folder and parts[3] != "cases":
                bad.append(f"{mod} imports its op's public module {d}")
            elif d.startswith(folder + ".") and _OP_PART_RANK.get(d.split(".")[3], 99) >= rank:
                bad.append(f"{mod} imports {d} (same or higher part of the op folder)")
    return bad


def test_op_folders_import_downward():
    assert [m for m in GRAPH if m.startswith("pygan.ops.residual_add.")], "the op folders moved"
    bad = op_folder_violations(GRAPH)
    assert not bad, "\n".join(bad)


def test_op_folder_rule_can_fail():
    graph = {
        "pygan.ops.foo.contract": [("pygan.ops.foo", 1), ("pygan.ops.foo.triton", 2)],
        "pygan.ops.foo.reference": [("pygan.ops._check", 1)],
        "pygan.ops._check": [("pygan.ops.foo.reference", 3)],
    }
    assert op_folder_violations(graph) == [
        "pygan.ops._check imports pygan.ops.foo.reference",
        "pygan.ops.foo.contract imports its op's public module pygan.ops.foo",
        "pygan.ops.foo.contract imports pygan.ops.foo.triton (same or higher part of the op folder)",
    ]
