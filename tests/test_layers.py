"""The package's edges, read from the source alone (AST; no import, no model): no import cycle, the engine knows no
AWS shape, store or surface, no private name crosses a module, no module over 500 lines and no function over 100.

Every import counts, lazy (inside a function) and ``TYPE_CHECKING`` ones too: a cycle that only a lazy import
closes is still a cycle a reader has to hold in their head. Each rule is also run on a small tree written here that
breaks it, so a rule that can no longer fail fails its own test.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "facecompare"
TESTS = ROOT / "tests"

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100
#: what the engine (``facecompare.engine`` and everything it imports) must never reach
ENGINE = "facecompare.engine"
ABOVE_THE_ENGINE = ("facecompare.rekognition", "facecompare.collections", "facecompare.review", "facecompare.server",
                    "facecompare.cli", "facecompare.batch", "facecompare.report", "facecompare.dedupe",
                    "facecompare.native", "facecompare.evaluation")


#: the layers of the README's Code map, lowest first: a module imports only from its own layer or those before it
#: (top-level modules and packages of ``facecompare``; the package's ``__init__`` is the public face above them all)
LAYERS = (
    ("errors", "settings", "checks", "faces", "quality", "scoring", "journal", "extras", "data", "heap"),  # leaves
    ("images", "image_limits", "image_pixels", "formats", "pdf_worker", "storage", "sources"),  # decoding
    ("models", "memory"),
    ("engine",),
    ("native",),  # the native JSON shapes
    ("db", "collections", "review"),  # the stores
    ("rekognition",),  # the AWS response shapes (of the engine's and the stores' results)
    ("batch", "dedupe", "workers", "evaluation", "evaluation_strict", "report", "plots", "draw", "synth", "synth_photo"),
    ("aws",),  # the Rekognition operations' handlers
    ("server", "cli"),  # the surfaces
)


@dataclass
class Tree:
    """The modules of a package: their names, files, imports (module -> modules it imports) and private imports."""

    modules: dict[str, Path]
    imports: dict[str, set[str]] = field(default_factory=dict)
    private: list[tuple[str, str, str]] = field(default_factory=list)  # (importer, module, name)


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def read_tree(src: Path, package: str, extra_files: tuple[Path, ...] = ()) -> Tree:
    """The package under ``src/package``; ``extra_files`` (tests) are read for their private imports only."""
    files = sorted((src / package).rglob("*.py"))
    tree = Tree({module_name(p, src): p for p in files})
    for path in [*files, *extra_files]:
        importer = module_name(path, src) if path in files else f"tests.{path.stem}"
        is_package = path.name == "__init__.py"
        found = tree.imports.setdefault(importer, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] == package)
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(node, importer, is_package)
                if target.split(".")[0] != package:
                    continue
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    if submodule in tree.modules:
                        found.add(submodule)
                        continue
                    found.add(target)
                    if _private(alias.name) and target != importer:
                        tree.private.append((importer, target, alias.name))
    return tree


def cycles(tree: Tree) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and modules importing themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in tree.imports.get(v, ()):
            if w not in tree.modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(tree.modules):
        if module not in index:
            visit(module)
    return found


def reached_from(tree: Tree, start: str) -> set[str]:
    """Every module that ``start`` and its submodules import, directly or not."""
    todo = [m for m in tree.modules if m == start or m.startswith(start + ".")]
    seen = set(todo)
    while todo:
        for w in tree.imports.get(todo.pop(), ()):
            if w in tree.modules and w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def engine_reaches(tree: Tree, engine: str = ENGINE, forbidden: tuple[str, ...] = ABOVE_THE_ENGINE) -> list[str]:
    return sorted(m for m in reached_from(tree, engine) if any(m == f or m.startswith(f + ".") for f in forbidden))


def layer_breaches(tree: Tree, layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """Imports that reach up a layer, and modules that belong to no layer."""
    where = {name: rank for rank, names in enumerate(layers) for name in names}

    def rank(module: str) -> int | None:
        parts = module.split(".")
        return -1 if len(parts) == 1 else where.get(parts[1])

    found = []
    for module in sorted(m for m in tree.modules if rank(m) != -1):
        if rank(module) is None:
            found.append(f"{module} is in no layer")
            continue
        found += [f"{module} imports {d}" for d in sorted(tree.imports.get(module, ()))
                  if d in tree.modules and rank(d) is not None and rank(d) > rank(module)]
    return found


def long_modules(tree: Tree, most: int = MAX_MODULE_LINES) -> list[tuple[str, int]]:
    sizes = ((m, len(p.read_text(encoding="utf-8").splitlines())) for m, p in tree.modules.items())
    return sorted((m, n) for m, n in sizes if n > most)


def long_functions(tree: Tree, most: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    found = []
    for module, path in tree.modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > most:
                    found.append((module, node.name, length))
    return sorted(found)


@pytest.fixture(scope="module")
def package() -> Tree:
    return read_tree(ROOT / "src", "facecompare", tuple(sorted(TESTS.glob("*.py"))))


def test_no_import_cycle(package):
    found = cycles(package)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_engine_knows_no_aws_shape_store_or_surface(package):
    assert ENGINE in package.modules
    found = engine_reaches(package)
    assert not found, f"{ENGINE} imports, directly or not: {', '.join(found)}"


def test_each_layer_imports_only_from_the_layers_below(package):
    found = layer_breaches(package)
    assert not found, "against the Code map's layers (README):\n" + "\n".join(found)


def test_no_private_name_crosses_a_module(package):
    found = package.private
    assert not found, "private names imported:\n" + "\n".join(f"{a} imports {n} from {m}" for a, m, n in found)


def test_no_module_over_500_lines(package):
    found = long_modules(package)
    assert not found, "modules over 500 lines: " + ", ".join(f"{m} ({n})" for m, n in found)


def test_no_function_over_100_lines(package):
    found = long_functions(package)
    assert not found, "functions over 100 lines: " + ", ".join(f"{m}.{f} ({n})" for m, f, n in found)


# -- each rule fails on a tree that breaks it -----------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "src"


def test_the_rules_catch_what_they_are_for(tmp_path):
    src = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import thing\n",
        "pkg/b.py": "def f():\n    from pkg import a  # a lazy import still closes the cycle\n    return a\n",
        "pkg/engine/__init__.py": "from .core import run\n",
        "pkg/engine/core.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..server import app\n",
        "pkg/server/__init__.py": "",
        "pkg/server/app.py": "from ..a import _hidden, __version__\n",
        "pkg/big.py": "x = 1\n" * 501 + "def long():\n" + "    y = 1\n" * 100,
    })
    tree = read_tree(src, "pkg")
    assert cycles(tree) == [["pkg.a", "pkg.b"]]
    assert engine_reaches(tree, "pkg.engine", ("pkg.server",)) == ["pkg.server.app"]
    assert tree.private == [("pkg.server.app", "pkg.a", "_hidden")]  # __version__ is not private
    assert long_modules(tree) == [("pkg.big", 602)]
    assert long_functions(tree) == [("pkg.big", "long", 101)]
    assert layer_breaches(tree, (("a", "b", "big"), ("engine",), ("server",))) == [
        "pkg.engine.core imports pkg.server.app"]  # a TYPE_CHECKING import up a layer counts
    assert layer_breaches(tree, (("a", "b", "big"), ("engine",))) == ["pkg.server is in no layer",
                                                                      "pkg.server.app is in no layer"]


def test_a_clean_tree_passes_every_rule(tmp_path):
    src = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/engine/__init__.py": "from ..leaf import helper\n",
        "pkg/leaf.py": "def helper():\n    return 1\n",
        "pkg/server/__init__.py": "from ..engine import helper\n",
    })
    tree = read_tree(src, "pkg")
    assert (cycles(tree), engine_reaches(tree, "pkg.engine", ("pkg.server",)), tree.private,
            long_modules(tree), long_functions(tree)) == ([], [], [], [], [])
    assert layer_breaches(tree, (("leaf",), ("engine",), ("server",))) == []
