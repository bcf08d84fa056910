"""Which training run is current, through ``contextvars``: decorated calls attach to
the right parent across nesting, generators, threads, asyncio tasks and processes."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from umlaut_core import Umlaut
from umlaut_core.experiments import (
    TrainingRun,
    pipeline,
    set_default_umlaut,
    set_tracking_enabled,
    step,
)
from umlaut_core.experiments.context import current_run


@pytest.fixture(autouse=True)
def _tracking_on() -> Iterator[None]:
    set_tracking_enabled(True)
    yield
    set_tracking_enabled(None)


@pytest.fixture(params=["memory", "sqlite"])
def um(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Umlaut]:
    uri = "memory:" if request.param == "memory" else f"sqlite:///{tmp_path / 'runs.db'}"
    facade = Umlaut(uri)
    set_default_umlaut(facade)
    yield facade
    set_default_umlaut(None)
    facade.close()


def runs(um: Umlaut, filter: str | None = None) -> list[TrainingRun]:
    um.flush()
    return um.search_training_runs(filter=filter, order_by="started_at ASC", limit=1000).runs


def by_id(um: Umlaut) -> dict[str, TrainingRun]:
    return {r.run_id: r for r in runs(um)}


@step
def leaf(label: str) -> str | None:
    run = current_run()
    return run.run_id if run is not None else None


class TestCurrentRun:
    """The step's run is current while its body runs, and only then."""

    def test_inside_and_after_a_step(self, um: Umlaut) -> None:
        assert current_run() is None
        with um.start_run("ctx", name="outer") as outer:
            inner_id = leaf("a")
            assert current_run() is outer
        assert current_run() is None
        inner = um.get_training_run(inner_id or "")
        assert (inner.name, inner.parent_id, inner.experiment) == ("leaf", outer.run_id, "ctx")

    def test_restored_after_an_exception(self, um: Umlaut) -> None:
        @step
        def fails() -> None:
            raise ValueError("x")

        with um.start_run(name="outer") as outer:
            with pytest.raises(ValueError):
                fails()
            assert current_run() is outer

    def test_root_true_starts_a_root_run_inside_another(self, um: Umlaut) -> None:
        @step(root=True)
        def separate() -> str | None:
            return leaf("child")

        with um.start_run(name="outer"):
            child_id = separate()
        got = by_id(um)
        own = got[got[child_id or ""].parent_id or ""]
        assert own.name == "separate" and own.parent_id is None

    def test_a_generator_body_and_its_consumer_each_see_their_own_run(self, um: Umlaut) -> None:
        seen_in_body: list[str | None] = []

        @step
        def batches() -> Iterator[int]:
            for i in range(2):
                seen_in_body.append(leaf("in body"))
                yield i

        with um.start_run(name="consumer") as consumer:
            children = []
            for _ in batches():
                assert current_run() is consumer
                children.append(leaf("in loop"))
        got = by_id(um)
        (gen_run,) = [r for r in got.values() if r.name == "batches"]
        assert {got[i or ""].parent_id for i in seen_in_body} == {gen_run.run_id}
        assert {got[i or ""].parent_id for i in children} == {consumer.run_id}


class TestThreads:
    """Threads see the run of the context they were given, and never another's."""

    def test_copied_contexts_attach_children_to_the_parent(self, um: Umlaut) -> None:
        with um.start_run(name="parent") as parent, ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(contextvars.copy_context().run, leaf, f"t{i}") for i in range(8)]
            ids = [f.result() for f in futures]
        got = by_id(um)
        assert len(set(ids)) == 8
        assert {got[i or ""].parent_id for i in ids} == {parent.run_id}

    def test_a_thread_without_a_copied_context_starts_root_runs(self, um: Umlaut) -> None:
        with um.start_run(name="parent"), ThreadPoolExecutor(2) as pool:
            child_id = pool.submit(leaf, "alone").result()
        assert by_id(um)[child_id or ""].parent_id is None

    def test_two_threads_running_their_own_pipelines_never_mix(self, um: Umlaut) -> None:
        barrier = threading.Barrier(2)

        @step
        def work(owner: str, i: int) -> None:
            barrier.wait(timeout=10)  # both threads are inside a step at once

        @pipeline
        def train(owner: str) -> None:
            for i in range(3):
                work(owner, i)

        threads = [threading.Thread(target=train, args=(o,)) for o in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        got = by_id(um)
        pipelines = {r.params["owner"]: r for r in got.values() if r.name == "train"}
        for r in got.values():
            if r.name == "work":
                assert r.parent_id == pipelines[r.params["owner"]].run_id


class TestAsyncio:
    """Each task copies its creator's context: its own run, the right parent."""

    def test_a_hundred_coroutines_under_gather(self, um: Umlaut) -> None:
        @step
        async def score(i: int) -> str | None:
            await asyncio.sleep(0.001 * (i % 3))
            own = current_run()
            nested = leaf(f"nested {i}")
            await asyncio.sleep(0)
            assert current_run() is own
            return nested

        async def main() -> list[str | None]:
            with um.start_run(name="sweep"):
                return list(await asyncio.gather(*(score(i) for i in range(100))))

        nested_ids = asyncio.run(main())
        got = by_id(um)
        (sweep,) = [r for r in got.values() if r.name == "sweep"]
        scores = {r.run_id: r for r in got.values() if r.name == "score"}
        assert len(scores) == 100
        assert {r.parent_id for r in scores.values()} == {sweep.run_id}
        assert sorted(r.params["i"] for r in scores.values()) == list(range(100))
        parents = [got[i or ""].parent_id for i in nested_ids]
        assert len(set(parents)) == 100 and set(parents) == set(scores)


@pytest.mark.slow
class TestChildProcess:
    """A child process attaches to its parent by id, through ``child_env()``."""

    def test_a_decorated_call_in_a_child_process(self, tmp_path: Path) -> None:
        uri = f"sqlite:///{tmp_path / 'runs.db'}"
        code = textwrap.dedent(
            """
            from umlaut_core.experiments import step

            @step
            def shard(n: int) -> dict[str, float]:
                return {"rows": n * 10.0}

            shard(7)
            """
        )
        with Umlaut(uri) as um:
            with um.start_run("distributed", name="parent") as parent:
                base = {k: v for k, v in os.environ.items() if not k.startswith("UMLAUT_")}
                subprocess.run(
                    [sys.executable, "-c", code],
                    env=base | parent.child_env(),
                    cwd=tmp_path,
                    check=True,
                    timeout=120,
                )
            (child,) = runs(um, filter=f"parent_id = '{parent.run_id}'")
            assert (child.name, child.experiment) == ("shard", "distributed")
            assert child.params == {"n": 7} and child.metrics["rows"].last == 70.0
