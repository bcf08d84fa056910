"""Versions: numbering, dedupe by digest, immutability, listing."""

from __future__ import annotations

import datetime as dt

import pytest

from ..._api import Umlaut
from ..._manager import get_plugin_manager
from ...exceptions import ModelNotFoundError, NotFoundError
from ...protocols import Capability, Tracker
from ..models import ExampleModel, Threshold, double
from ._base import TrackerTestBase

__all__ = ["TrackModelTests"]


class TrackModelTests(TrackerTestBase):
    """track_model numbers versions 1, 2, 3 … and stores each bundle once."""

    def test_first_version_is_one_and_created(self, umlaut: Umlaut, model_name: str) -> None:
        mv = umlaut.track_model(model=ExampleModel(), model_name=model_name)
        assert (mv.name, mv.version, mv.created) == (model_name, 1, True)
        assert mv.digest.startswith("sha256:") and len(mv.digest) == 71
        assert mv.artifact_uri
        assert mv.created_at.tzinfo is not None

    def test_store_reopened_from_its_uris_keeps_everything(
        self,
        tracker: Tracker,
        store_uris: tuple[str, str | None],
        umlaut: Umlaut,
        model_name: str,
    ) -> None:
        self.require(tracker, Capability.PERSISTENT)
        mv = umlaut.track_model(Threshold(5), model_name, stage="Staging")
        umlaut.run_model(model_name, {"x": 7}, stage="Staging", reference_id="before-reopen")
        tracking, artifacts = store_uris
        # Opened the way a user opens it: from URIs, through the installed plugin.
        reopened = Umlaut(tracking, artifacts, delivery="sync", plugin_manager=get_plugin_manager())
        try:
            again = reopened.get_version(model_name, stage="Staging")
            assert (again.version, again.digest) == (mv.version, mv.digest)
            assert [r.reference_id for r in reopened.history(model_name)] == ["before-reopen"]
            assert reopened.run_model(model_name, {"x": 7}, version=1) == umlaut.run_model(
                model_name, {"x": 7}, version=1
            )
        finally:
            reopened.close()

    def test_changed_models_count_up_without_gaps(self, umlaut: Umlaut, model_name: str) -> None:
        versions = [umlaut.track_model(Threshold(i), model_name).version for i in range(4)]
        assert versions == [1, 2, 3, 4]
        assert [v.version for v in umlaut.list_versions(model_name)] == [1, 2, 3, 4]

    def test_unchanged_model_returns_existing_version(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        first = umlaut.track_model(Threshold(7), model_name)
        umlaut.track_model(Threshold(8), model_name)
        again = umlaut.track_model(Threshold(7), model_name)
        assert (again.version, again.created, again.digest) == (1, False, first.digest)
        assert len(umlaut.list_versions(model_name)) == 2

    def test_same_bundle_under_two_names_is_two_models(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        a = umlaut.track_model(double, model_name)
        b = umlaut.track_model(double, model_name + " copy")
        assert (a.version, b.version, a.digest) == (1, 1, b.digest)
        assert a.created and b.created

    def test_metadata_round_trips(self, umlaut: Umlaut, model_name: str) -> None:
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        umlaut.track_model(
            ExampleModel(),
            model_name,
            description="revenue above target?",
            tags={"team": "finance", "ticket": "FIN-1"},
            params={"target": 5, "nested": {"a": [1, 2]}},
            metrics={"accuracy": 0.75},
        )
        mv = umlaut.get_version(model_name, version=1)
        assert mv.description == "revenue above target?"
        assert mv.tags["team"] == "finance" and mv.tags["ticket"] == "FIN-1"
        assert mv.params == {"target": 5, "nested": {"a": [1, 2]}}
        assert mv.metrics == {"accuracy": 0.75}
        assert mv.flavor == "python-class"
        assert mv.manifest["payload_sha256"] and mv.manifest["flavor"] == "python-class"
        assert before <= mv.created_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    def test_versions_are_immutable(
        self, umlaut: Umlaut, fresh_umlaut: Umlaut, model_name: str
    ) -> None:
        v1 = umlaut.track_model(Threshold(1), model_name)
        umlaut.track_model(Threshold(100), model_name)
        again = fresh_umlaut.get_version(model_name, version=1)
        assert (again.digest, dict(again.manifest)) == (v1.digest, dict(v1.manifest))
        assert fresh_umlaut.run_model(model_name, {"x": 50}, version=1)["above"] is True
        assert fresh_umlaut.run_model(model_name, {"x": 50})["above"] is False

    def test_list_models_shows_latest_and_stages(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(1), model_name, stage="Staging")
        umlaut.track_model(Threshold(2), model_name)
        info = {m.name: m for m in umlaut.list_models()}[model_name]
        assert info.latest_version == 2
        assert dict(info.aliases) == {"Staging": 1}

    def test_unknown_model_lists_existing(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(double, model_name)
        with pytest.raises(ModelNotFoundError, match="no model named") as info:
            umlaut.list_versions(model_name + " missing")
        assert model_name in str(info.value)

    def test_function_and_sklearn_like_flavors(self, umlaut: Umlaut, model_name: str) -> None:
        mv = umlaut.track_model(double, model_name)
        assert mv.flavor == "python-function"
        assert umlaut.run_model(model_name, {"x": 21}) == 42

    def test_tracker_lookups_raise_typed_errors(self, tracker: Tracker, model_name: str) -> None:
        """Called directly, a tracker raises the core's NotFoundError family only."""
        with pytest.raises(ModelNotFoundError):
            tracker.get_version(model_name)
        with pytest.raises(ModelNotFoundError):
            tracker.list_versions(model_name)
        with pytest.raises(NotFoundError):
            tracker.stage_history(model_name)
        with pytest.raises(NotFoundError):
            tracker.set_alias(model_name, "Staging", 1, changed_by=None, reason=None)
        assert tracker.find_version(model_name, "sha256:" + "0" * 64) is None
