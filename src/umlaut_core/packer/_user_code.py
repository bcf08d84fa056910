"""Which already-imported modules are the user's own code, to be packed by value.

"Your own files": modules under the same root (the ``sys.path`` entry or script folder
holding the model's top-level package or ``__main__``) that are not the standard
library, not in site-packages, and not part of an installed distribution (editable
installs included, found through ``direct_url.json``). Results are cached: a scan of
``sys.modules`` is keyed on its size and last entry.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import os
import re
import sys
import sysconfig
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["modules_under", "user_modules"]


def modules_under(paths: Iterable[str]) -> set[types.ModuleType]:
    roots = [Path(p).resolve() for p in paths]
    found: set[types.ModuleType] = set()
    if not roots:
        return found
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and module.__name__ != "__main__":
            where = Path(file).resolve()
            if any(where == r or where.is_relative_to(r) for r in roots):
                found.add(module)
    return found


def user_modules(obj: Any) -> set[types.ModuleType]:
    """Already-imported modules of the user's own code, packed by value.

    The user's code is found from the object's own module (or the ``__main__``
    script): its *root* is the ``sys.path`` entry or script folder that holds its
    top-level package. Every imported module importable from that same root is
    packed by value (so ``userpkg/scoring.py`` brings ``userpkg/helpers.py`` along),
    except installed code: site-packages/dist-packages, the standard library, and
    files of an installed distribution, editable installs included.
    """
    names = {getattr(obj, "__module__", None), type(obj).__module__}
    roots: set[Path] = set()
    for name in names:
        if not name or name in sys.builtin_module_names:
            continue
        module = sys.modules.get(name)
        if module is None:
            continue
        root = _own_root(module)
        if root is not None:
            roots.add(root)
    if not roots:
        return set()
    key = frozenset(roots)
    # sys.modules only grows at its end (dicts keep order), so its size and last key
    # tell whether anything was imported since the last scan.
    mark = (len(sys.modules), next(reversed(sys.modules), None))
    cached = _SCANS.get(key)
    if cached is None or cached[0] != mark:
        own = frozenset(
            name
            for name, module in list(sys.modules.items())
            if name != "__main__"  # cloudpickle packs __main__ by value anyway
            and isinstance(module, types.ModuleType)
            and _own_root(module) in roots
        )
        cached = _SCANS[key] = (mark, own)
    return {m for n in cached[1] if isinstance(m := sys.modules.get(n), types.ModuleType)}


# roots -> (state of sys.modules when scanned, names of the user's modules found)
_SCANS: dict[frozenset[Path], tuple[tuple[int, str | None], frozenset[str]]] = {}


# (module name, file) -> the root the module is imported from when it is the user's
# own code, else None. Files do not move while a process runs; a module re-imported
# from elsewhere has another key.
_ROOTS: dict[tuple[str, str], Path | None] = {}


def _own_root(module: types.ModuleType) -> Path | None:
    """The folder ``module`` is imported from, when it is the user's own code."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file:
        return None
    name = module.__name__
    if name == "__main__":
        spec = getattr(module, "__spec__", None)
        name = getattr(spec, "name", None) or "__main__"  # python -m pkg.mod
    key = (name, file)
    try:
        return _ROOTS[key]
    except KeyError:
        pass
    root = _compute_root(name, file)
    _ROOTS[key] = root
    return root


def _compute_root(name: str, file: str) -> Path | None:
    if not _is_user_file(file):
        return None
    try:
        where = Path(file).resolve()
    except (OSError, RuntimeError):
        return None
    depth = name.count(".") + (1 if where.stem == "__init__" else 0)
    if name == "__main__" or depth >= len(where.parents):
        depth = 0
    if _installed_file(where, name.split(".", 1)[0]):
        return None
    return where.parents[depth]


def _is_user_file(path: str | None) -> bool:
    if not path:
        return False
    lowered = path.replace("\\", "/")
    if "/site-packages/" in lowered or "/dist-packages/" in lowered:
        return False
    if lowered.endswith((".so", ".pyd", ".pyc", ".dll")):
        return False  # compiled: cannot be packed by value anyway
    return not any(lowered.startswith(p + "/") for p in _stdlib_dirs())


@functools.cache
def _stdlib_dirs() -> tuple[str, ...]:
    found = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib")} | {
        os.path.join(sys.base_prefix, "lib")
    }
    dirs = set()
    for d in found:
        if d:
            dirs.add(d.replace("\\", "/").rstrip("/"))
            dirs.add(os.path.realpath(d).replace("\\", "/").rstrip("/"))
    return tuple(sorted(dirs))


def _installed_file(where: Path, top: str) -> bool:
    """Whether ``where`` belongs to an installed distribution (editable or not)."""
    editable_dirs, editable_names = _editable_installs()
    if top in editable_names or any(where.is_relative_to(d) for d in editable_dirs):
        return True
    dists = _installed_top_levels().get(top)
    if not dists:
        return False
    # Same top-level name as an installed package: installed only if it is really
    # one of that distribution's files (a user's own `tests` package is not).
    for dist_name in dists:
        try:
            files = importlib.metadata.distribution(dist_name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for entry in files:
            if (entry.parts and entry.parts[0] == top) or entry.stem == top:
                try:
                    if Path(str(entry.locate())).resolve() == where:
                        return True
                except (OSError, RuntimeError):
                    continue
    return False


@functools.cache
def _installed_top_levels() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


_FINDER_MAPPING = re.compile(r"^MAPPING\s*(?::[^=]*)?=\s*(\{.*?\})\s*$", re.M | re.S)


@functools.cache
def _editable_installs() -> tuple[tuple[Path, ...], frozenset[str]]:
    """Source folders and top-level names of distributions installed in editable mode.

    ``packages_distributions()`` does not list them: they are found by their
    ``direct_url.json`` (``dir_info.editable``), then through the ``.pth`` files they
    install (a folder per line), setuptools' ``__editable___*_finder.py`` mapping,
    and ``top_level.txt``.
    """
    dirs: set[Path] = set()
    names: set[str] = set()
    for dist in importlib.metadata.distributions():
        try:
            direct = json.loads(dist.read_text("direct_url.json") or "{}")
        except (ValueError, OSError):
            continue
        if not (isinstance(direct, dict) and (direct.get("dir_info") or {}).get("editable")):
            continue
        names.update((dist.read_text("top_level.txt") or "").split())
        for entry in dist.files or []:
            try:
                text = Path(str(entry.locate())).read_text()
            except (OSError, UnicodeDecodeError):
                continue
            if entry.suffix == ".pth":
                for line in text.splitlines():
                    line = line.strip()
                    if line and not line.startswith(("#", "import ", "import\t")):
                        dirs.add(Path(line).resolve())
            elif entry.name.startswith("__editable__") and entry.name.endswith("_finder.py"):
                match = _FINDER_MAPPING.search(text)
                try:
                    mapping = ast.literal_eval(match.group(1)) if match else {}
                except (ValueError, SyntaxError):
                    mapping = {}
                if isinstance(mapping, dict):
                    names.update(str(k) for k in mapping)
                    dirs.update(Path(str(v)).resolve() for v in mapping.values())
    return tuple(sorted(dirs)), frozenset(names)
