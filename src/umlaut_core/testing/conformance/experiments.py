"""Training runs at the store level: writes, their idempotence rules, reads.

The tests drive an :class:`~umlaut_core.experiments.ExperimentStore` with the
writes of :mod:`umlaut_core.experiments.writes`, as the facade and the spool's
shipper do, and read back with ``get_run``, ``metric_history`` and
``list_experiments``. Searching is in :mod:`.experiment_search`.

What the tests assume of a store, beyond the protocol's docstrings:

* times round-trip to the millisecond (MLflow keeps no more), so every time written
  here is whole milliseconds, timezone-aware UTC;
* distinct metric points differ in ``(step, timestamp_ms, value)`` as well as in
  ``point_id``, and ``metric_history`` is compared without ``point_id``: a store
  without point ids (MLflow) deduplicates on the other fields instead;
* params and ``environment`` come back as the same JSON, types included (``1`` is
  not ``1.0`` nor ``True``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest

from ..._api import Umlaut
from ..._manager import get_plugin_manager
from ...exceptions import BackendNotFoundError, NotFoundError, TrainingRunNotFoundError
from ...experiments.filters import RunSearch, parse_filter
from ...experiments.protocol import ArtifactKeepingStore, ExperimentStore
from ...experiments.records import LinkedVersion, MetricPoint, RunArtifact, RunStatus, TrainingRun
from ...experiments.writes import (
    ArtifactLogged,
    Heartbeat,
    MetricsLogged,
    ParamsLogged,
    RunEnded,
    RunStarted,
    RunWrite,
    TagsSet,
    VersionLinked,
)
from ...ids import new_run_id
from ...protocols import Capability, Tracker
from ...registry import BackendRegistry
from ._base import TrackerTestBase

__all__ = ["ExperimentTestBase", "TrainingRunTests"]

#: Whole milliseconds: what every store keeps of a time.
T0 = dt.datetime(2025, 6, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)
NAN = float("nan")
INF = float("inf")


def at(seconds: float) -> dt.datetime:
    """``T0`` plus ``seconds`` (whole milliseconds)."""
    return T0 + dt.timedelta(milliseconds=round(seconds * 1000))


def points(key: str, values: Sequence[float], *, first_step: int = 0) -> tuple[MetricPoint, ...]:
    """One point per value at steps ``first_step``, ``first_step + 1`` …; time, step and
    id all grow with the step, so the points are distinct under either dedupe rule."""
    return tuple(
        MetricPoint(key, float(v), s, T0_MS + 1000 * s, s + 1)
        for s, v in enumerate(values, start=first_step)
    )


def num(value: float) -> float | str:
    """A float that compares equal to itself: NaN != NaN would fail every check."""
    return "nan" if math.isnan(value) else float(value)


def as_json(value: Any) -> str:
    """Canonical JSON, so ``1``, ``1.0`` and ``True`` stay apart when compared."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def plain_run(run: TrainingRun) -> dict[str, Any]:
    """Every field of a run in a form ``==`` compares fully (NaN-safe, JSON-typed,
    artifacts and versions in a fixed order), so a failing test shows the field."""
    out = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
    out["params"] = as_json(dict(run.params))
    out["environment"] = as_json(dict(run.environment))
    out["tags"] = dict(run.tags)
    out["metrics"] = {
        k: (s.key, num(s.last), s.last_step, s.last_timestamp_ms, num(s.min), num(s.max), s.count)
        for k, s in run.metrics.items()
    }
    out["artifacts"] = sorted(run.artifacts, key=lambda a: a.path)
    out["versions"] = sorted(run.versions, key=lambda v: (v.model_name, v.version))
    return out


def history_of(store: ExperimentStore, run_id: str, key: str) -> list[tuple[Any, ...]]:
    """A metric's history as ``(key, value, step, timestamp_ms)`` (see the module
    docstring: point ids need not round-trip)."""
    return [
        (p.key, num(p.value), p.step, p.timestamp_ms) for p in store.metric_history(run_id, key)
    ]


def expected_history(pts: Sequence[MetricPoint]) -> list[tuple[Any, ...]]:
    ordered = sorted(pts, key=lambda p: (p.step, p.timestamp_ms, p.point_id))
    return [(p.key, num(p.value), p.step, p.timestamp_ms) for p in ordered]


class ExperimentTestBase(TrackerTestBase):
    """Fixtures of the experiment tests: the store under test and fresh names."""

    @pytest.fixture
    def experiment_store(self, tracker: Tracker) -> Iterator[ExperimentStore]:
        """The tracker's experiment store, opened as the facade opens it: through the
        installed plugins' ``registry.add_experiment_store`` for the tracker's scheme.
        Tests skip when the scheme has none; override this fixture to build the store
        some other way."""
        registry = BackendRegistry.from_plugins(get_plugin_manager())
        try:
            store = registry.open_experiment_store(tracker)
        except BackendNotFoundError:
            pytest.skip(
                f"{type(tracker).__name__} has no experiment store registered "
                f"(registry.add_experiment_store)"
            )
        yield cast(ExperimentStore, store)
        store.close()

    @pytest.fixture
    def experiment(self) -> str:
        """An experiment name no other test uses, so a store may be shared."""
        return f"conformance {uuid.uuid4().hex[:12]}"

    @staticmethod
    def start(
        store: ExperimentStore,
        experiment: str,
        *more: RunWrite,
        name: str | None = None,
        started_at: dt.datetime = T0,
        **fields: Any,
    ) -> str:
        """Start a run with a new id and return it; ``more`` writes follow in the same
        batch, given that id in place of their own (the tests pass ``""``)."""
        run_id = new_run_id()
        started = RunStarted(run_id, experiment, name, started_at, **fields)
        store.write([started, *(dataclasses.replace(w, run_id=run_id) for w in more)])
        return run_id


class TrainingRunTests(ExperimentTestBase):
    """Writes are applied idempotently, by their rules, and read back as written."""

    def test_store_satisfies_the_protocol(self, experiment_store: ExperimentStore) -> None:
        assert isinstance(experiment_store, ExperimentStore)
        assert isinstance(experiment_store.uri, str) and experiment_store.uri
        caps = type(experiment_store).capabilities
        assert isinstance(caps, frozenset) and all(isinstance(c, Capability) for c in caps)
        if Capability.RUN_ARTIFACTS in caps:
            assert isinstance(experiment_store, ArtifactKeepingStore)

    def test_started_run_round_trips_every_field(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        environment = {
            "python": "3.11.9",
            "packages": {"numpy": "2.0.1", "scikit-learn": "1.5.0"},
            "git": {"commit": "0123abcd" * 5, "dirty": True},
            "argv": ["train.py", "--lr", "0.1"],
            "pid": 4321,
            "source": "/home/ä/train.py",
        }
        parent = self.start(
            experiment_store, experiment, name="first run ✓", user="alice",
            host="gpu-1.example", tags={"team": "vision", "note": "ünï"},
            environment=environment, started_at=at(1.5),
        )  # fmt: skip
        child = self.start(experiment_store, experiment, parent_id=parent, started_at=at(2))
        expected = TrainingRun(
            run_id=parent, experiment=experiment, name="first run ✓",
            status=RunStatus.RUNNING, started_at=at(1.5), user="alice", host="gpu-1.example",
            tags={"team": "vision", "note": "ünï"}, environment=environment,
            heartbeat_at=at(1.5),
        )  # fmt: skip
        got = experiment_store.get_run(parent)
        assert plain_run(got) == plain_run(expected)
        assert got.started_at.tzinfo is not None
        kid = experiment_store.get_run(child)
        assert (kid.parent_id, kid.name, kid.user, kid.host) == (parent, None, None, None)
        assert (dict(kid.tags), dict(kid.params), dict(kid.environment)) == ({}, {}, {})

    def test_replayed_run_started_leaves_the_run_as_it_is(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        run_id = self.start(experiment_store, experiment, name="a", tags={"k": "1"})
        experiment_store.write([TagsSet(run_id, {"k": "2"})])
        replay = RunStarted(run_id, experiment, "b", at(60), tags={"k": "1", "j": "x"})
        experiment_store.write([replay])
        run = experiment_store.get_run(run_id)
        assert (run.name, run.started_at, dict(run.tags)) == ("a", T0, {"k": "2"})

    def test_params_of_any_json_come_back_equal(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        params: dict[str, Any] = {
            "nested": {"a": [1, 2.5, {"b": None, "c": [True, False]}], "d": {"e": "f"}},
            "unicode": "größe ✓ 損失 🚀",
            "long": "x" * 99_999 + "y",
            "list": list(range(10_000)),
            "int": 3, "float": 3.0, "bool": True, "null": None, "empty": "",
            "big": 10**20, "tiny": -1.5e-300, "numeric text": "1.0",
        }  # fmt: skip
        run_id = self.start(experiment_store, experiment, ParamsLogged("", params))
        assert as_json(dict(experiment_store.get_run(run_id).params)) == as_json(params)

    def test_first_param_value_wins(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        run_id = self.start(experiment_store, experiment, ParamsLogged("", {"a": 1, "b": [1]}))
        experiment_store.write([ParamsLogged(run_id, {"a": 2, "b": [1], "c": "new"})])
        experiment_store.write([ParamsLogged(run_id, {"c": "newer"})])
        params = experiment_store.get_run(run_id).params
        assert as_json(dict(params)) == as_json({"a": 1, "b": [1], "c": "new"})

    def test_tags_last_write_wins_and_keep_long_values(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        long = "t" * 100_000
        run_id = self.start(experiment_store, experiment, tags={"a": "1", "long": "short"})
        experiment_store.write([TagsSet(run_id, {"a": "2", "long": long, "b": "ünï 🚀"})])
        assert dict(experiment_store.get_run(run_id).tags) == {
            "a": "2",
            "long": long,
            "b": "ünï 🚀",
        }
        experiment_store.write(
            [TagsSet(run_id, {"long": "u" * 99_999}), TagsSet(run_id, {"a": ""})]
        )
        tags = experiment_store.get_run(run_id).tags
        assert dict(tags) == {"a": "", "long": "u" * 99_999, "b": "ünï 🚀"}

    def test_keys_with_spaces_slashes_dots_and_unicode(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        keys = ["learning rate", "val/loss", "x.y", "größe", "損失"]
        run_id = self.start(
            experiment_store, experiment,
            ParamsLogged("", {k: i for i, k in enumerate(keys)}),
            TagsSet("", {k: k.upper() for k in keys}),
            MetricsLogged("", tuple(p for k in keys for p in points(k, [0.5, 0.25]))),
        )  # fmt: skip
        run = experiment_store.get_run(run_id)
        assert dict(run.params) == {k: i for i, k in enumerate(keys)}
        assert dict(run.tags) == {k: k.upper() for k in keys}
        assert sorted(run.metrics) == sorted(keys)
        assert all(run.metrics[k].last == 0.25 and run.metrics[k].key == k for k in keys)
        for k in keys:
            assert history_of(experiment_store, run_id, k) == expected_history(
                points(k, [0.5, 0.25])
            )
        where = "params.`learning rate` = 0 and tags.`x.y` = 'X.Y' and metrics.`val/loss`.max = 0.5"
        page = experiment_store.search_runs(RunSearch((experiment,), parse_filter(where)))
        assert [r.run_id for r in page.runs] == [run_id]

    def test_nan_and_infinities_are_kept(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        """A diverging loss stays visible: in the history and in every summary."""
        series = {"x": [NAN, INF, -INF, 1.5], "y": [1.0, INF], "z": [-INF], "w": [0.5, NAN]}
        written = tuple(p for k, vs in series.items() for p in points(k, vs))
        run_id = self.start(experiment_store, experiment, MetricsLogged("", written))
        for key, values in series.items():
            assert history_of(experiment_store, run_id, key) == expected_history(
                points(key, values)
            )
        m = experiment_store.get_run(run_id).metrics
        summaries = {k: (num(s.last), num(s.min), num(s.max), s.count) for k, s in m.items()}
        assert summaries == {
            "x": (1.5, -INF, INF, 4),
            "y": (INF, 1.0, INF, 2),
            "z": (-INF, -INF, -INF, 1),
            "w": ("nan", 0.5, 0.5, 2),
        }

    def test_summaries_follow_the_last_min_max_count_rules(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        """``last``: highest step, then latest time, then highest point id (here the
        id also arrives last, so a store that keeps no ids may go by arrival);
        min/max ignore NaN unless every value is NaN."""
        key, store = "loss", experiment_store
        run_id = self.start(store, experiment)
        batches = [
            [MetricPoint(key, 0.5, 2, T0_MS + 2000, 1), MetricPoint(key, 0.9, 0, T0_MS, 2)],
            [MetricPoint(key, 0.4, 2, T0_MS + 3000, 3), MetricPoint(key, NAN, 1, T0_MS + 5000, 4)],
            [MetricPoint(key, 0.7, 2, T0_MS + 3000, 5)],
            [MetricPoint("nan", NAN, 0, T0_MS, 1), MetricPoint("nan", NAN, 1, T0_MS + 1, 2)],
            [MetricPoint("late", NAN, 0, T0_MS, 1), MetricPoint("late", 2.0, 0, T0_MS - 1, 2)],
        ]
        for batch in batches:
            store.write([MetricsLogged(run_id, tuple(batch))])
        m = store.get_run(run_id).metrics
        got = {k: (num(s.last), s.last_step, s.last_timestamp_ms, num(s.min), num(s.max), s.count)
               for k, s in m.items()}  # fmt: skip
        assert got == {
            "loss": (0.7, 2, T0_MS + 3000, 0.4, 0.9, 5),
            "nan": ("nan", 1, T0_MS + 1, "nan", "nan", 2),
            "late": ("nan", 0, T0_MS, 2.0, 2.0, 2),
        }

    def test_metric_history_is_ordered_and_unknown_key_is_empty(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        pts = [
            MetricPoint("acc", 0.3, 5, T0_MS + 10, 1),
            MetricPoint("acc", 0.1, -1, T0_MS + 99, 2),
            MetricPoint("acc", 0.2, 5, T0_MS + 5, 3),
            MetricPoint("acc", 0.4, 2**40, T0_MS, 4),  # steps are 64-bit
            MetricPoint("acc", 0.6, 5, T0_MS + 10, 6),
            MetricPoint("other", 9.0, 0, T0_MS, 1),
        ]
        run_id = self.start(experiment_store, experiment, MetricsLogged("", tuple(pts[:3])))
        experiment_store.write([MetricsLogged(run_id, tuple(pts[3:]))])
        assert history_of(experiment_store, run_id, "acc") == expected_history(pts[:5])
        assert history_of(experiment_store, run_id, "never logged") == []
        assert experiment_store.get_run(run_id).metrics["acc"].last_step == 2**40

    def test_a_thousand_points_in_one_batch(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        values = [math.sin(i / 10) for i in range(1000)]
        run_id = self.start(experiment_store, experiment, MetricsLogged("", points("sin", values)))
        assert history_of(experiment_store, run_id, "sin") == expected_history(
            points("sin", values)
        )
        s = experiment_store.get_run(run_id).metrics["sin"]
        assert (s.count, s.last, s.last_step) == (1000, values[-1], 999)
        assert (s.min, s.max) == (min(values), max(values))

    def test_replaying_a_batch_changes_nothing(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        """The shipper delivers at least once: a batch applied twice, or a batch that
        overlaps one already applied, has the effect of applying it once."""
        run_id, store = new_run_id(), experiment_store
        data = b"weights"
        batch: list[RunWrite] = [
            RunStarted(run_id, experiment, "replayed", T0, tags={"a": "1"}),
            ParamsLogged(run_id, {"lr": 0.1, "layers": [64, 32]}),
            TagsSet(run_id, {"b": "2"}),
            MetricsLogged(run_id, points("loss", [0.9, NAN, 0.5, INF])),
            ArtifactLogged(run_id, "model.bin", "mem://model.bin", len(data),
                           hashlib.sha256(data).hexdigest()),
            VersionLinked(run_id, "iris", 3),
            Heartbeat(run_id, at(30)),
            RunEnded(run_id, RunStatus.FINISHED, at(60)),
        ]  # fmt: skip
        store.write(batch)
        once, history = plain_run(store.get_run(run_id)), history_of(store, run_id, "loss")
        store.write(batch)
        assert plain_run(store.get_run(run_id)) == once
        assert history_of(store, run_id, "loss") == history
        overlap = points("loss", [0.9, NAN, 0.5, INF, 0.25, 0.125])[2:]
        store.write([MetricsLogged(run_id, overlap), MetricsLogged(run_id, overlap)])
        s = store.get_run(run_id).metrics["loss"]
        assert (s.count, s.last, s.min, s.max) == (6, 0.125, 0.125, INF)
        assert len(history_of(store, run_id, "loss")) == 6

    def test_run_ended_sets_the_final_status_once(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        store = experiment_store
        done = self.start(store, experiment, RunEnded("", RunStatus.FINISHED, at(10)))
        store.write([RunEnded(done, RunStatus.FAILED, at(20), "ValueError: late")])
        store.write([RunEnded(done, RunStatus.KILLED, at(30))])
        failed = self.start(store, experiment, RunEnded("", RunStatus.FAILED, at(10), "E: boom"))
        store.write([RunEnded(failed, RunStatus.FINISHED, at(20))])
        running = self.start(store, experiment)
        got = {r: store.get_run(r) for r in (done, failed, running)}
        assert [(g.status, g.ended_at, g.error) for g in got.values()] == [
            (RunStatus.FINISHED, at(10), None),
            (RunStatus.FAILED, at(10), "E: boom"),
            (RunStatus.RUNNING, None, None),
        ]

    def test_killed_gives_way_to_the_runs_own_end(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        """A reader marked the run KILLED; the process was alive after all and ends it."""
        store = experiment_store
        finished = self.start(store, experiment, RunEnded("", RunStatus.KILLED, at(10)))
        store.write([RunEnded(finished, RunStatus.FINISHED, at(20))])
        store.write([RunEnded(finished, RunStatus.KILLED, at(30))])
        failed = self.start(store, experiment, RunEnded("", RunStatus.KILLED, at(10)))
        store.write([RunEnded(failed, RunStatus.FAILED, at(20), "KeyError: 'x'")])
        killed = self.start(store, experiment, RunEnded("", RunStatus.KILLED, at(10)))
        store.write([RunEnded(killed, RunStatus.KILLED, at(40))])
        got = [store.get_run(r) for r in (finished, failed, killed)]
        assert [(g.status, g.ended_at, g.error) for g in got] == [
            (RunStatus.FINISHED, at(20), None),
            (RunStatus.FAILED, at(20), "KeyError: 'x'"),
            (RunStatus.KILLED, at(10), None),
        ]

    def test_heartbeat_only_moves_forward(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        run_id = self.start(experiment_store, experiment, Heartbeat("", at(10)))
        assert experiment_store.get_run(run_id).heartbeat_at == at(10)
        experiment_store.write([Heartbeat(run_id, at(30)), Heartbeat(run_id, at(20))])
        experiment_store.write([Heartbeat(run_id, at(5))])
        assert experiment_store.get_run(run_id).heartbeat_at == at(30)

    def test_writes_to_an_unknown_run_raise_and_stop_the_batch(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        store, ghost = experiment_store, new_run_id()
        for write in (
            ParamsLogged(ghost, {"a": 1}),
            MetricsLogged(ghost, points("m", [1.0])),
            TagsSet(ghost, {"a": "1"}),
            RunEnded(ghost, RunStatus.FINISHED, T0),
            Heartbeat(ghost, T0),
            ArtifactLogged(ghost, "f", "mem://f", 1, "0" * 64),
            VersionLinked(ghost, "m", 1),
        ):
            with pytest.raises(TrainingRunNotFoundError):
                store.write([write])
        run_id = self.start(store, experiment)
        with pytest.raises(TrainingRunNotFoundError) as info:
            store.write([ParamsLogged(ghost, {"a": 1}), TagsSet(run_id, {"after": "x"})])
        assert isinstance(info.value, NotFoundError)
        assert "after" not in experiment_store.get_run(run_id).tags
        with pytest.raises(TrainingRunNotFoundError):
            store.get_run(ghost)

    def test_unknown_run_is_not_found(self, experiment_store: ExperimentStore) -> None:
        with pytest.raises(TrainingRunNotFoundError):
            experiment_store.get_run(new_run_id())
        with pytest.raises(TrainingRunNotFoundError):
            list(experiment_store.metric_history(new_run_id(), "loss"))

    def test_artifacts_and_versions_are_recorded(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        store = experiment_store
        run_id = self.start(
            store, experiment,
            ArtifactLogged("", "model/weights.bin", "mem://a/1", 10, "a" * 64),
            ArtifactLogged("", "plots/loss curve.png", "mem://a/2", 20, "b" * 64),
            VersionLinked("", "iris", 1),
        )  # fmt: skip
        store.write([
            ArtifactLogged(run_id, "model/weights.bin", "mem://a/3", 30, "c" * 64),
            VersionLinked(run_id, "iris", 2),
            VersionLinked(run_id, "iris", 1),
            VersionLinked(run_id, "other model", 1),
        ])  # fmt: skip
        run = store.get_run(run_id)
        assert sorted(run.artifacts, key=lambda a: a.path) == [
            RunArtifact("model/weights.bin", "mem://a/3", 30, "c" * 64),
            RunArtifact("plots/loss curve.png", "mem://a/2", 20, "b" * 64),
        ]
        assert sorted(run.versions, key=lambda v: (v.model_name, v.version)) == [
            LinkedVersion("iris", 1), LinkedVersion("iris", 2), LinkedVersion("other model", 1)
        ]  # fmt: skip

    def test_store_keeps_artifact_bytes(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        if Capability.RUN_ARTIFACTS not in experiment_store.capabilities:
            pytest.skip(
                f"{type(experiment_store).__name__} does not declare Capability.RUN_ARTIFACTS"
            )
        store = cast(ArtifactKeepingStore, experiment_store)
        run_id = self.start(store, experiment)
        files = {"model/weights.bin": bytes(range(256)) * 400, "notes ü.txt": b"", "x": b"\0"}
        uris = {path: store.put_artifact(run_id, path, data) for path, data in files.items()}
        assert all(store.get_artifact(uris[path]) == data for path, data in files.items())
        store.write([
            ArtifactLogged(run_id, path, uris[path], len(data), hashlib.sha256(data).hexdigest())
            for path, data in files.items()
        ])  # fmt: skip
        got = {a.path: a for a in store.get_run(run_id).artifacts}
        assert sorted(got) == sorted(files)
        assert all(store.get_artifact(a.uri) == files[p] for p, a in got.items())

    def test_list_experiments(self, experiment_store: ExperimentStore, experiment: str) -> None:
        names = [experiment + " b", experiment + " a"]
        for name in (*names, names[0]):
            self.start(experiment_store, name)
        listed = [e for e in experiment_store.list_experiments() if e.name.startswith(experiment)]
        assert [e.name for e in listed] == sorted(names)
        for e in listed:
            assert isinstance(e.experiment_id, str) and e.experiment_id
            assert e.created_at.tzinfo is not None

    def test_threads_writing_points_count_each_once(
        self, experiment_store: ExperimentStore, experiment: str
    ) -> None:
        """Four writers on one run, each also replaying one batch of its neighbour's
        (two shippers delivering the same spool): every point is counted once."""
        run_id = self.start(experiment_store, experiment)
        batches = {
            t: [points("loss", [0.5] * 10, first_step=100 * t + 10 * b) for b in range(10)]
            for t in range(4)
        }
        errors: list[BaseException] = []

        def writer(t: int) -> None:
            try:
                for batch in [*batches[t], batches[(t + 1) % 4][0]]:
                    experiment_store.write([MetricsLogged(run_id, batch)])
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        s = experiment_store.get_run(run_id).metrics["loss"]
        assert (s.count, s.last_step, s.min, s.max) == (400, 399, 0.5, 0.5)
        steps = [step for _, _, step, _ in history_of(experiment_store, run_id, "loss")]
        assert steps == sorted(100 * t + i for t in range(4) for i in range(100))

    def test_store_reopened_from_its_uris_keeps_training_runs(
        self,
        tracker: Tracker,
        store_uris: tuple[str, str | None],
        experiment_store: ExperimentStore,
        experiment: str,
    ) -> None:
        self.require(tracker, Capability.PERSISTENT)
        run_id = self.start(
            experiment_store, experiment,
            ParamsLogged("", {"lr": 0.1}),
            MetricsLogged("", points("loss", [0.9, 0.4])),
            RunEnded("", RunStatus.FINISHED, at(5)),
        )  # fmt: skip
        before = plain_run(experiment_store.get_run(run_id))
        tracking, artifacts = store_uris
        # Opened the way a user opens it: from URIs, through the installed plugins.
        reopened = Umlaut(tracking, artifacts, delivery="sync", plugin_manager=get_plugin_manager())
        try:
            registry = BackendRegistry.from_plugins(get_plugin_manager())
            store: ExperimentStore = registry.open_experiment_store(reopened.tracker)
            try:
                assert plain_run(store.get_run(run_id)) == before
                assert history_of(store, run_id, "loss") == expected_history(
                    points("loss", [0.9, 0.4])
                )
                page = store.search_runs(RunSearch((experiment,), parse_filter("params.lr = 0.1")))
                assert [r.run_id for r in page.runs] == [run_id]
                assert experiment in {e.name for e in store.list_experiments()}
            finally:
                store.close()
        finally:
            reopened.close()
