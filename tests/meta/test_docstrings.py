"""Meta-tests: every public API object has a docstring, so the generated reference is whole.

mkdocstrings renders what the docstrings say; it does not fail on a missing one. These
tests do: every name in ``umlaut_core.__all__`` (classes, their public methods and
properties, functions), every protocol method, every hookspec, the pytest fixtures of
``umlaut_core.testing.plugin`` and the shipped example plugin.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import umlaut_core
from umlaut_core import hookspecs, protocols
from umlaut_core.testing import example_plugin
from umlaut_core.testing import plugin as testing_plugin


def _doc(obj: Any) -> str:
    # A class's own docstring, not one inherited from a base (inspect.getdoc would).
    raw = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
    return (raw or "").strip()


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, property):
            yield attr, value.fget
        elif isinstance(value, (classmethod, staticmethod)):
            yield attr, value.__func__
        elif inspect.isfunction(value):
            yield attr, value


def _public_objects() -> Iterator[tuple[str, Any]]:
    modules = [
        (umlaut_core, umlaut_core.__all__),
        (protocols, protocols.__all__),
        (example_plugin, example_plugin.__all__),
    ]
    for module, names in modules:
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # markers, constants, __version__
            qual = f"{module.__name__}.{name}"
            yield qual, obj
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for attr, member in _members(obj):
                    yield f"{qual}.{attr}", member


PUBLIC = sorted(dict(_public_objects()).items())


class TestPublicDocstrings:
    """Every public class, method, property and function says what it does."""

    def test_there_is_something_to_check(self) -> None:
        names = [q for q, _ in PUBLIC]
        assert "umlaut_core.Umlaut.run_model" in names
        assert "umlaut_core.protocols.Tracker.query_runs" in names

    @pytest.mark.parametrize(("qual", "obj"), PUBLIC, ids=[q for q, _ in PUBLIC])
    def test_has_docstring(self, qual: str, obj: Any) -> None:
        assert _doc(obj), f"{qual} has no docstring (the API reference would be empty)"

    @pytest.mark.parametrize("name", umlaut_core.exceptions.__all__)
    def test_exception_has_docstring(self, name: str) -> None:
        assert _doc(getattr(umlaut_core.exceptions, name)), f"{name} has no docstring"

    @pytest.mark.parametrize("member", list(protocols.Capability), ids=lambda c: c.name)
    def test_capability_is_documented(self, member: protocols.Capability) -> None:
        lines = inspect.getsource(protocols.Capability).splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{member.name} ="))
        assert lines[at - 1].strip().startswith("#:"), f"Capability.{member.name}: no #: doc"

    @pytest.mark.parametrize("attr", ["uri", "capabilities", "default_artifact_uri"])
    def test_tracker_attributes_are_documented(self, attr: str) -> None:
        assert f"``{attr}``" in _doc(protocols.Tracker)

    @pytest.mark.parametrize("hook", [n for n in hookspecs.__all__ if n.startswith("umlaut_")])
    def test_hookspec_has_docstring(self, hook: str) -> None:
        assert _doc(getattr(hookspecs, hook))

    @pytest.mark.parametrize("fixture", testing_plugin.__all__)
    def test_testing_fixture_has_docstring(self, fixture: str) -> None:
        obj = getattr(testing_plugin, fixture)
        assert _doc(obj) or _doc(getattr(obj, "__wrapped__", None)), f"{fixture}: no docstring"
