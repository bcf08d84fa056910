"""Meta-tests: every hook is documented (spec and README guide) and has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from umlaut_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if name.startswith("umlaut_") and inspect.isfunction(fn)
)


def test_hooks_exist() -> None:
    assert len(HOOKS) >= 9


class TestHookDocs:
    """Each hookspec says what it is for, documents every argument, and is in the guide."""

    @pytest.mark.parametrize("hook", HOOKS)
    def test_spec_docstring_is_complete(self, hook: str) -> None:
        fn = getattr(hookspecs, hook)
        doc = inspect.getdoc(fn) or ""
        assert doc.splitlines()[0].endswith("."), f"{hook}: one-line summary first"
        for param in inspect.signature(fn).parameters:
            assert f":param {param}:" in doc, f"{hook}: no :param {param}:"
        assert ":return:" in doc and "versionadded" in doc
        if getattr(fn, "umlaut_spec", {}).get("firstresult"):
            assert "stops at the first non-None result" in doc

    @pytest.mark.parametrize("hook", HOOKS)
    def test_readme_plugin_guide_documents_hook(self, hook: str) -> None:
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        guide = readme.split("## Writing a plugin", 1)[-1]
        assert re.search(rf"`{hook}\(", guide), f"README plugin guide lacks `{hook}(...)`"


class TestHookTests:
    """Each hook has a test named after it."""

    @pytest.mark.parametrize("hook", HOOKS)
    def test_hook_has_a_test(self, hook: str) -> None:
        sources = "\n".join(
            p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py")
        )
        assert f"def test_{hook}(" in sources, f"no test named test_{hook}"
