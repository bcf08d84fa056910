"""Pickling a model: cloudpickle, by value for the user's own code, refusing open files.

Two things make the bytes stable and safe: class-tracker ids derived from content (so
an unchanged model packs to the same bytes in every process, while the tracking
process still gets its own classes back on load), and a pickler that refuses file
objects anywhere in the object graph (cloudpickle would copy a read-mode file's
content into the bundle).
"""

from __future__ import annotations

import functools
import hashlib
import io
import sys
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any

import cloudpickle

from ..exceptions import PackingError
from ._user_code import modules_under, user_modules

__all__ = ["dumps", "qualname"]

# cloudpickle's by-value registry is process-global; serialise our use of it.
_BY_VALUE_LOCK = threading.Lock()


class _OpenFileError(Exception):
    """Raised from inside the pickler: ``obj`` holds a file object."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.file = file


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, refusing file objects wherever they sit in the object graph.

    cloudpickle reduces a read-mode file by *content*, so a model holding one would
    silently carry a copy of the file (and a write-mode one fails obscurely).
    ``sys.stdout``/``sys.stderr`` stay allowed: cloudpickle pickles them by name.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, io.IOBase) and not _is_std_stream(obj):
            raise _OpenFileError(obj)
        return super().reducer_override(obj)


def _is_std_stream(obj: Any) -> bool:
    return any(obj is getattr(sys, n, None) for n in ("stdout", "stderr"))


def dumps(obj: Any, code_paths: Iterable[str] | None) -> bytes:
    """cloudpickle ``obj``, by value for code that lives in the user's own files."""
    modules = user_modules(obj) | modules_under(code_paths or ())
    with _BY_VALUE_LOCK:
        registered = []
        for module in modules:
            try:
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
            except ValueError:
                pass
        try:
            buffer = io.BytesIO()
            _Pickler(buffer, protocol=5).dump(obj)
            return _stable_class_ids(buffer.getvalue())
        except _OpenFileError as exc:
            raise PackingError(_open_file_message(obj, exc.file)) from None
        except Exception as exc:
            raise PackingError(f"cannot pickle {qualname(obj)}: {exc!r}") from exc
        finally:
            for module in registered:
                cloudpickle.unregister_pickle_by_value(module)


def _open_file_message(obj: Any, file: Any) -> str:
    where = _path_to(obj, file)
    name = getattr(file, "name", None)
    mode = getattr(file, "mode", None)
    described = f"{type(file).__module__}.{type(file).__qualname__}"
    if isinstance(name, (str, bytes, int)):
        described += f" {name!r}"
    if getattr(file, "closed", False):
        described += " (closed)"
    elif isinstance(mode, str):
        described += f" (mode {mode!r})"
    return (
        f"cannot pack {qualname(obj)}: {where or 'an object it refers to'} is a file object "
        f"({described}). A bundle must not hold open files: cloudpickle would copy a "
        f"read-mode file's content into the bundle, and the file would not be open where "
        f"the model loads. Open the file inside run(), or keep its content (read it into "
        f"an attribute) or its path instead."
    )


def _path_to(root: Any, target: Any, limit: int = 20_000) -> str | None:
    """A readable path (``model.sources[1]``) from ``root`` to ``target``, if short.

    Only used to word an error once pickling has failed; breadth-first and bounded.
    """
    start = "model" if not isinstance(root, types.FunctionType) else root.__name__
    queue: list[tuple[Any, str]] = [(root, start)]
    seen: set[int] = set()
    for value, path in queue:
        if value is target:
            return path
        if id(value) in seen or len(seen) > limit:
            continue
        seen.add(id(value))
        children: list[tuple[Any, str]] = []
        if isinstance(value, Mapping):
            children = [(v, f"{path}[{k!r}]") for k, v in list(value.items())]
        elif isinstance(value, (list, tuple, set, frozenset)):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(list(value))]
        elif isinstance(value, types.FunctionType):
            code = value.__code__
            children = [(value.__globals__[n], n) for n in code.co_names if n in value.__globals__]
            cells = value.__closure__ or ()
            children += [
                (c.cell_contents, n)
                for n, c in zip(code.co_freevars, cells, strict=False)
                if _cell_filled(c)
            ]
        elif isinstance(value, functools.partial):
            children = [(value.func, f"{path}.func")]
            children += [(v, f"{path}.args[{i}]") for i, v in enumerate(value.args)]
            children += [(v, f"{path}.keywords[{k!r}]") for k, v in value.keywords.items()]
        elif not isinstance(value, (type, types.ModuleType, str, bytes, int, float)):
            attrs = getattr(value, "__dict__", None)
            if isinstance(attrs, dict):
                children = [(v, f"{path}.{k}") for k, v in list(attrs.items())]
            for slot in _slots_of(type(value)):
                if hasattr(value, slot):
                    children.append((getattr(value, slot), f"{path}.{slot}"))
        queue.extend(children)
    return None


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - probing an empty cell raises
    except ValueError:
        return False
    return True


def _slots_of(klass: type) -> list[str]:
    names: list[str] = []
    for k in klass.__mro__:
        slots = k.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else list(slots))
    return [n for n in names if n not in ("__dict__", "__weakref__")]


def _stable_class_ids(payload: bytes) -> bytes:
    """Replace cloudpickle's random class-tracker ids with ids derived from content.

    cloudpickle tags each class it pickles by value with a random uuid4, so the same
    class gives different bytes in every process and re-running a script would track
    a "new" version each time. The ids are swapped for hashes of the payload with the
    ids blanked: equal content gives equal bytes, different content different ids (so
    two versions of a class never merge when loaded into one process).

    Each derived id is also registered in cloudpickle's tracker for the original
    class: unpickling looks classes up there by id, so loading the bundle in the
    process that packed it gives back the very classes it was packed from (an
    ``except MyError`` keeps catching, ``Enum`` members keep their identity) instead
    of building look-alike copies. Another process finds no such id and builds the
    class, as before.
    """
    module = cloudpickle.cloudpickle
    tracker = getattr(module, "_DYNAMIC_CLASS_TRACKER_BY_ID", None)
    if not tracker:
        return payload
    found = sorted(
        {i for i in list(tracker) if i.encode() in payload},
        key=lambda i: payload.index(i.encode()),
    )
    if not found:
        return payload
    blank = payload
    for tid in found:
        blank = blank.replace(tid.encode(), b"0" * len(tid))
    content = hashlib.sha256(blank).hexdigest()
    derived: dict[str, str] = {}
    for n, tid in enumerate(found):
        derived[tid] = hashlib.sha256(f"{content}:{n}".encode()).hexdigest()[: len(tid)]
        payload = payload.replace(tid.encode(), derived[tid].encode())
    lock = getattr(module, "_DYNAMIC_CLASS_TRACKER_LOCK", None) or threading.Lock()
    with lock:
        for tid, new_id in derived.items():
            klass = tracker.get(tid)
            if klass is not None:
                # The latest class packed under an id wins: after a notebook cell
                # re-defines an unchanged class, loading gives the current one.
                tracker[new_id] = klass
    return payload


def qualname(obj: Any) -> str:
    target = obj if isinstance(obj, (type, types.FunctionType)) else type(obj)
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', '?')}"
