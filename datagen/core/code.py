"""Which project source files a module depends on, read statically from its imports.

A stage's shards carry a fingerprint of exactly the code that stage runs: the files in the
import closure of its stage module. Editing a benchmark, a report or another stage's module
leaves them valid; editing anything the stage imports (transitively) marks them stale. The same
closure checks that ``dvc.yaml`` lists every file a stage's command imports (see the tests).

Imports are read from the source (``ast``), at any depth: module level, inside functions and in
``TYPE_CHECKING`` blocks alike, so the closure errs on the side of too much. Only modules of the
project's own packages are followed; third-party and standard-library imports are not.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (or installed tree) root
PACKAGES = ("datagen", "models", "pipelines", "tests")
# Data that a module reads from the tree: part of the code of every stage that imports it (and
# a dvc.yaml dep of that stage; the tests check both).
MODULE_DATA = {"datagen/face3d/morphable.py": ("datagen/assets/surrey-face-model",)}


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of project module ``name`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``),
    or None when it is not one."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = root.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):  # a package comes first
        if candidate.is_file():
            return candidate
    return None


def _package_inits(name: str, root: Path) -> list[str]:
    """``a.b.c`` -> the packages ``a`` and ``a.b`` that importing it runs first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(path: Path, name: str, root: Path = ROOT) -> set[str]:
    """Project modules that the source at ``path`` (module ``name``) imports."""
    st = path.stat()
    return set(_imports(str(path), st.st_mtime_ns, st.st_size, name, str(root)))


@lru_cache(maxsize=1024)
def _imports(path_str: str, mtime_ns: int, size: int, name: str, root_str: str) -> frozenset[str]:
    """``imported_modules``, parsed once per file version (the key holds its mtime and size):
    a stage computes its fingerprint on every write, a benchmark many times."""
    path, root = Path(path_str), Path(root_str)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            # ``from pkg import name``: name may be a submodule
            out.update(f"{mod}.{a.name}" for a in node.names if a.name != "*")
    return frozenset(m for m in out if module_file(m, root) is not None)


def import_closure(name: str, root: Path = ROOT) -> tuple[Path, ...]:
    """Source files of ``name`` and of every project module it imports, transitively, with the
    ``__init__.py`` of each package on the way; sorted."""
    if module_file(name, root) is None:
        raise ModuleNotFoundError(f"{name} is not a module of this project (under {root})")
    seen: set[str] = set()
    todo = [name]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = module_file(mod, root)
        if path is None:
            continue
        todo.extend(_package_inits(mod, root))
        todo.extend(imported_modules(path, mod, root))
    files = {module_file(m, root) for m in seen}
    return tuple(sorted(p for p in files if p is not None))


def data_files(closure: tuple[Path, ...], root: Path = ROOT) -> list[Path]:
    """The files of ``MODULE_DATA`` that the modules of ``closure`` read, sorted."""
    rel = {p.relative_to(root).as_posix() for p in closure}
    out: set[Path] = set()
    for module, folders in MODULE_DATA.items():
        if module in rel:
            for folder in folders:
                out |= {p for p in (root / folder).rglob("*") if p.is_file()}
    return sorted(out)


def code_fingerprint(name: str, root: Path = ROOT) -> str:
    """SHA-256 over the paths (relative to the root) and bytes of ``import_closure(name)`` and
    of the data files those modules read."""
    closure = import_closure(name, root)
    h = hashlib.sha256()
    for path in (*closure, *data_files(closure, root)):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()
