"""fastcorr's modules import one way: no module reaches itself again through its imports."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "fastcorr"


def module_name(path, root=PACKAGE):
    parts = ["fastcorr", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source, name, is_package, modules):
    """The fastcorr modules that ``source`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            for alias in node.names:
                found.add(f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin)
    return {m for m in found if m in modules}


def import_graph(root=PACKAGE):
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    return {name: imports(path.read_text(), name, path.name == "__init__.py", files) for name, path in files.items()}


def cycles(graph):
    """Every module that can reach itself, with the path it takes."""
    found = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append(path + [start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def test_no_module_imports_in_a_circle():
    graph = import_graph()
    assert {"fastcorr", "fastcorr.__main__", "fastcorr._bench", "fastcorr._chapter"} <= set(graph)
    assert "fastcorr._chapter" in graph["fastcorr.__main__"] and "fastcorr._chapter" in graph["fastcorr._bench"]
    assert cycles(graph) == []


@pytest.mark.parametrize("files, expected", [
    ({"a.py": "from fastcorr import b", "b.py": "def f():\n    from fastcorr.a import g"},
     [["fastcorr.a", "fastcorr.b", "fastcorr.a"], ["fastcorr.b", "fastcorr.a", "fastcorr.b"]]),
    ({"a.py": "import fastcorr.b", "b.py": "from . import c", "c.py": "from .a import x"},
     [["fastcorr.a", "fastcorr.b", "fastcorr.c", "fastcorr.a"],
      ["fastcorr.b", "fastcorr.c", "fastcorr.a", "fastcorr.b"],
      ["fastcorr.c", "fastcorr.a", "fastcorr.b", "fastcorr.c"]]),
    ({"__init__.py": "from fastcorr.a import f", "a.py": "import numpy", "b.py": "import fastcorr as fc"}, []),
])
def test_the_cycle_finder_sees_lazy_and_relative_imports(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert cycles(import_graph(tmp_path)) == expected
