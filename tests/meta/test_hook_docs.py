"""Meta-tests: every hook is documented (spec, plugin guide, reference) and has a test."""

from __future__ import annotations

import inspect
import pydoc
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
    def test_plugin_guide_documents_hook(self, hook: str) -> None:
        guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
        assert re.search(rf"`{hook}\(", guide), f"docs/plugins.md lacks `{hook}(...)`"

    @pytest.mark.parametrize("hook", HOOKS)
    def test_hook_is_exported_so_help_shows_it(self, hook: str) -> None:
        assert hook in hookspecs.__all__, f"{hook} missing from hookspecs.__all__"

    def test_all_holds_the_markers_and_only_real_hooks(self) -> None:
        assert {"PROJECT", "hookimpl", "hookspec"} <= set(hookspecs.__all__)
        assert set(hookspecs.__all__) - {"PROJECT", "hookimpl", "hookspec"} == set(HOOKS)

    def test_pydoc_lists_every_hook(self) -> None:
        text = pydoc.render_doc(hookspecs, renderer=pydoc.plaintext)
        missing = [hook for hook in HOOKS if f"{hook}(" not in text]
        assert not missing, f"help(umlaut_core.hookspecs) does not show {missing}"

    def test_hook_reference_is_generated_from_the_module(self) -> None:
        page = (ROOT / "docs" / "reference" / "hooks.md").read_text(encoding="utf-8")
        assert "::: umlaut_core.hookspecs" in page


class TestHookTests:
    """Each hook has a test named after it."""

    @pytest.mark.parametrize("hook", HOOKS)
    def test_hook_has_a_test(self, hook: str) -> None:
        sources = "\n".join(
            p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py")
        )
        assert f"def test_{hook}(" in sources, f"no test named test_{hook}"
