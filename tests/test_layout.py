"""The package's boundaries: no module of sdagd uses another module's private names, and the
library does not depend on the paper's reproduction (sdagd.paper).

A private name is one starting with "_" (dunders aside). A module may use its own (functions,
classes, attributes it assigns); from another sdagd module it may import only public names,
though a package-internal module (sdagd/_files.py, sdagd/_core, ...) is itself importable.
Attribute access `obj._name` is checked by name: `_name` must be one the module itself
defines or assigns (so `self._x` is fine, `net._net` in optim.py is not). Read by ast, from
the source files, without importing them.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sdagd"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)

# Private attributes of the standard library that the code relies on, by the module's name.
STDLIB_PRIVATE = {("os", "_exit")}


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def dotted(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(module: str) -> bool:
    """Whether the sdagd module ``module`` (dotted) exists: a .py file, a package or the C extension."""
    relative = Path(*module.split("."))
    root = PACKAGE.parent
    return ((root / relative).with_suffix(".py").exists() or (root / relative / "__init__.py").exists()
            or any((root / relative.parent).glob(relative.name + ".*.so")) or module == "sdagd._core")


def resolve(node: ast.ImportFrom, here: str, is_package: bool) -> str | None:
    """The dotted name an ImportFrom reads from, or None if outside sdagd."""
    if node.level == 0:
        return node.module if node.module and (node.module == "sdagd" or node.module.startswith("sdagd.")) else None
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def own_private_names(tree: ast.AST) -> set:
    """Private names a module defines: functions, classes, and attributes or names it assigns."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if private(n)}


def stdlib_modules(tree: ast.AST) -> set:
    """Names bound by absolute imports of modules outside sdagd (``import os``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("sdagd"):
                    names.add(alias.asname or alias.name.split(".")[0])
    return names


def violations(path: Path) -> list:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here, is_package = dotted(path), path.name == "__init__.py"
    own, outside = own_private_names(tree), stdlib_modules(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = resolve(node, here, is_package)
            if source is None or source == here:
                continue
            for alias in node.names:
                if private(alias.name) and not is_module(f"{source}.{alias.name}"):
                    found.append(f"line {node.lineno}: from {source} import {alias.name}")
        elif isinstance(node, ast.Attribute) and private(node.attr) and node.attr not in own:
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if base in outside and (base, node.attr) in STDLIB_PRIVATE:
                continue
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_private_names_of_other_modules(path):
    found = violations(path)
    assert not found, (f"{path.relative_to(PACKAGE.parent)} uses private names of other modules: "
                       + "; ".join(found) + ". Give what it needs a public (or package-internal) name in "
                       "the module that owns it.")


def test_the_checker_finds_what_it_forbids(tmp_path, monkeypatch):
    """The rule can fail: a module reaching into another's private names is caught."""
    fake = tmp_path / "sdagd"
    fake.mkdir()
    (fake / "mlp.py").write_text("def _is_int(v):\n    return True\n")
    (fake / "many.py").write_text("import os\nfrom .mlp import _is_int\nfrom . import _core\n"
                                  "def f(net, opt):\n    os._exit(0)\n    return net._net, opt._bind, self_._x\n"
                                  "class A:\n    def __init__(self):\n        self._x = 1\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    found = violations(fake / "many.py")
    assert found == ["line 2: from sdagd.mlp import _is_int", "line 6: net._net", "line 6: opt._bind"]


def test_the_library_does_not_import_the_paper():
    """sdagd's library modules (everything outside sdagd/paper/ but the command line, which
    fronts both) never import sdagd.paper: the reproduction depends on the library, not the
    other way round."""
    found = []
    for path in MODULES:
        if "paper" in path.relative_to(PACKAGE).parts or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        here, is_package = dotted(path), path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = resolve(node, here, is_package) or ""
                names = [source] + [f"{source}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(n == "sdagd.paper" or n.startswith("sdagd.paper.") for n in names):
                found.append(f"{path.relative_to(PACKAGE.parent)}, line {node.lineno}")
    assert not found, f"the library imports sdagd.paper: {found}"
