"""Every user-caused failure named in the core issue: typed, explained, nothing changed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import (
    BackendNotFoundError,
    EnvironmentMismatchError,
    InputEncodingError,
    IntegrityError,
    InvalidNameError,
    ModelNotFoundError,
    StageNotFoundError,
    Umlaut,
    UmlautError,
    UnsupportedModelError,
    VersionNotFoundError,
    get_plugin_manager,
)
from umlaut_core.keys import bundle_key
from umlaut_core.stores.folder import FolderArtifactStore
from umlaut_core.stores.memory import MemoryTracker
from umlaut_core.testing.models import ExampleModel, Threshold

NAME = "Revenue Forecast"


@pytest.fixture
def umlaut(tmp_path: Path) -> Umlaut:
    u = Umlaut(tracker=MemoryTracker(), artifact_store=FolderArtifactStore(str(tmp_path / "a")))
    u.track_model(ExampleModel(), NAME, stage="Staging")
    u.run_model(NAME, {"revenue": 9}, stage="Staging")
    return u


def _snapshot(u: Umlaut) -> tuple[Any, ...]:
    models = [(m.name, m.latest_version, dict(m.aliases)) for m in u.list_models()]
    versions = [
        (v.name, v.version, v.digest) for m in u.list_models() for v in u.list_versions(m.name)
    ]
    runs = [r.id for r in u.history(limit=10_000)]
    ledger = [(c.stage, c.to_version) for m in u.list_models() for c in u.stage_history(m.name)]
    return models, versions, runs, ledger


def _tamper(u: Umlaut) -> None:
    store = u.artifact_store
    assert store is not None
    mv = u.get_version(NAME)
    original = store.get(mv.artifact_uri)
    data = bytearray(original)
    data[len(data) // 2] ^= 1
    store.delete(mv.artifact_uri)
    store.put(bundle_key(hashlib.sha256(original).hexdigest()), bytes(data))


def _strict_mismatch(u: Umlaut) -> None:
    """Load the bundle where every package it names has another version installed."""
    from unittest import mock

    with mock.patch("umlaut_core.packer._bundle._dist_version", return_value="0.0.1"):
        _fresh(u, env_policy="strict").run_model(NAME, {"revenue": 1})


def _fresh(u: Umlaut, **options: Any) -> Umlaut:
    return Umlaut(tracker=u.tracker, artifact_store=u.artifact_store, **options)


CASES: list[tuple[str, Callable[[Umlaut], Any], type[UmlautError], str]] = [
    ("unknown model", lambda u: u.run_model("Nope", {}), ModelNotFoundError, "Revenue Forecast"),
    (
        "unknown version",
        lambda u: u.run_model(NAME, {}, version=7),
        VersionNotFoundError,
        "no version 7",
    ),
    (
        "unknown stage",
        lambda u: u.run_model(NAME, {}, stage="Production"),
        StageNotFoundError,
        "'Staging'",
    ),
    ("empty name", lambda u: u.track_model(ExampleModel(), ""), InvalidNameError, "empty"),
    (
        "long name",
        lambda u: u.track_model(ExampleModel(), "m" * 201),
        InvalidNameError,
        "limit is 200",
    ),
    ("dotdot name", lambda u: u.track_model(ExampleModel(), "a/../b"), InvalidNameError, "'..'"),
    (
        "leading slash",
        lambda u: u.track_model(ExampleModel(), "/etc/x"),
        InvalidNameError,
        "path separator",
    ),
    (
        "backslash",
        lambda u: u.track_model(ExampleModel(), "\\share\\m"),
        InvalidNameError,
        "path separator",
    ),
    (
        "control char",
        lambda u: u.track_model(ExampleModel(), "a\x07b"),
        InvalidNameError,
        "control",
    ),
    ("NUL", lambda u: u.track_model(ExampleModel(), "a\x00b"), InvalidNameError, "control"),
    (
        "no name",
        lambda u: u.track_model(ExampleModel()),
        InvalidNameError,
        "model_name is required",
    ),
    (
        "bad stage",
        lambda u: u.track_model(Threshold(1), NAME, stage="no way"),
        InvalidNameError,
        "stage",
    ),
    (
        "no entry point",
        lambda u: u.track_model(object(), "plain"),
        UnsupportedModelError,
        "run(input)",
    ),
    (
        "class not instance",
        lambda u: u.track_model(ExampleModel, "cls"),
        UnsupportedModelError,
        "ExampleModel()",
    ),
    (
        "NaN input",
        lambda u: u.run_model(NAME, {"revenue": float("nan")}),
        InputEncodingError,
        "nan",
    ),
    ("bytes input", lambda u: u.run_model(NAME, {"revenue": b"3"}), InputEncodingError, "bytes"),
    (
        "bad batch item",
        lambda u: u.run_batch(NAME, [{"revenue": 1}, {"revenue": {1}}, {"x": {2: 1}}]),
        InputEncodingError,
        "batch item 2",
    ),
    ("unknown scheme", lambda u: Umlaut("cassandra://db"), BackendNotFoundError, "'cassandra'"),
    (
        "tampered bundle",
        lambda u: (_tamper(u), _fresh(u).run_model(NAME, {"revenue": 1})),
        IntegrityError,
        "corrupted",
    ),
    (
        "strict env",
        _strict_mismatch,
        EnvironmentMismatchError,
        "(here 0.0.1)",
    ),
]


class TestUserErrors:
    """Each case raises its own UmlautError subclass and leaves stored data as it was."""

    @pytest.mark.parametrize(
        ("case", "action", "error", "needle"), CASES, ids=[c[0] for c in CASES]
    )
    def test_error_is_typed_explained_and_harmless(
        self,
        umlaut: Umlaut,
        case: str,
        action: Callable[[Umlaut], Any],
        error: type[UmlautError],
        needle: str,
    ) -> None:
        before = _snapshot(umlaut)
        with pytest.raises(error) as info:
            action(umlaut)
        assert needle in str(info.value), str(info.value)
        assert _snapshot(umlaut) == before

    def test_model_exception_is_unchanged_and_recorded(self, umlaut: Umlaut) -> None:
        def explode(data: Any) -> Any:
            raise RuntimeError("boom")

        umlaut.track_model(explode, "exploder")
        with pytest.raises(RuntimeError) as info:
            umlaut.run_model("exploder", {"a": 1})
        assert type(info.value) is RuntimeError and str(info.value) == "boom"
        (record,) = umlaut.history("exploder")
        assert (record.status, record.error_type, record.error_message) == (
            "error",
            "RuntimeError",
            "boom",
        )

    def test_plugin_manager_is_a_factory(self) -> None:
        assert get_plugin_manager(autoload=False) is not get_plugin_manager(autoload=False)
