"""``@step`` / ``@pipeline`` on ``memory:`` and SQLite: each call is a training run,
and the decorated function behaves exactly as the undecorated one."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import ConfigurationError, Umlaut, hookimpl
from umlaut_core.config import resolve_settings
from umlaut_core.exceptions import BackendError
from umlaut_core.experiments import (
    RunStatus,
    TrainingRun,
    pipeline,
    set_default_umlaut,
    set_tracking_enabled,
    step,
    step_calls,
)
from umlaut_core.experiments.context import current_run
from umlaut_core.experiments.decorator import (
    CLOSED_TAG,
    FUNCTION_TAG,
    KIND_TAG,
    RETURN_TAG,
    tracking_enabled,
)
from umlaut_core.experiments.memory import MemoryExperimentStore
from umlaut_core.experiments.summaries import MAX_TEXT, bounded_text, summarise
from umlaut_core.stores.memory import MemoryTracker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline_decorator.py"


@pytest.fixture(autouse=True)
def _fresh_switches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(step_calls, "_warned", set())
    set_tracking_enabled(True)
    yield
    set_tracking_enabled(None)
    set_default_umlaut(None)


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


def only(um: Umlaut) -> TrainingRun:
    (run,) = runs(um)
    return run


class TestBehaviour:
    """The same value, the same exception, the same signature: nothing is added."""

    def test_the_return_value_is_the_same_object(self, um: Umlaut) -> None:
        value = {"weights": [1, 2, 3]}

        @step
        def fit() -> dict[str, Any]:
            return value

        assert fit() is value
        run = only(um)
        assert (run.name, run.status, run.parent_id) == ("fit", RunStatus.FINISHED, None)
        assert run.tags[FUNCTION_TAG].endswith("fit") and run.tags[KIND_TAG] == "step"
        assert run.metrics["duration_s"].last >= 0

    def test_the_exception_is_the_same_object_with_its_traceback(self, um: Umlaut) -> None:
        error = ValueError("diverged")

        @step
        def fit() -> None:
            raise error

        with pytest.raises(ValueError) as caught:
            fit()
        assert caught.value is error
        assert caught.traceback[-1].name == "fit"  # the raising frame is still there
        run = only(um)
        assert (run.status, run.error) == (RunStatus.FAILED, "ValueError: diverged")

    def test_keyboard_interrupt_passes_and_kills_the_run(self, um: Umlaut) -> None:
        @step
        def fit() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            fit()
        assert only(um).status is RunStatus.KILLED

    def test_signature_name_doc_and_kind_are_the_originals(self) -> None:
        def plain(a: int, b: str = "x", *rest: int, flag: bool = False, **kw: Any) -> int:
            """Doc."""
            return a

        def gen(n: int) -> Iterator[int]:
            yield n

        async def coro(n: int) -> int:
            return n

        async def agen(n: int) -> AsyncIterator[int]:
            yield n

        functions: list[Callable[..., Any]] = [plain, gen, coro, agen]
        for fn in functions:
            tracked = step(fn)
            assert inspect.signature(tracked) == inspect.signature(fn)
            assert (tracked.__name__, tracked.__doc__) == (fn.__name__, fn.__doc__)
            assert inspect.unwrap(tracked) is fn
            for check in (
                inspect.isgeneratorfunction,
                inspect.iscoroutinefunction,
                inspect.isasyncgenfunction,
            ):
                assert check(tracked) == check(fn)

    def test_no_keyword_is_added_and_bad_calls_fail_as_before(self, um: Umlaut) -> None:
        @step(name="kw")
        def kwargs(**kw: Any) -> dict[str, Any]:
            return kw

        def strict(a: int) -> int:
            return a

        refused: dict[str, Any] = {"b": 1}
        assert kwargs(a=1) == {"a": 1}
        with pytest.raises(TypeError) as plain:
            strict(**refused)
        with pytest.raises(TypeError) as tracked:
            step(strict)(**refused)
        assert str(tracked.value) == str(plain.value)
        assert [r.name for r in runs(um)] == ["kw"]  # the refused call left no run

    def test_options_must_be_keywords(self) -> None:
        with pytest.raises(TypeError, match="by keyword"):
            step("fit")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="not the class"):
            step(_Model)
        with pytest.raises(ConfigurationError, match="takes an Umlaut"):
            step(umlaut="memory:")(len)  # type: ignore[call-overload]


class _Model:
    """A class with every kind of method, decorated in both orders."""

    def __init__(self, scale: int) -> None:
        self.scale = scale

    @step
    def fit(self, x: int) -> int:
        return x * self.scale

    @step
    @staticmethod
    def outer_static(x: int) -> int:
        return x + 1

    @staticmethod
    @step
    def inner_static(x: int) -> int:
        return x + 2

    @step
    @classmethod
    def outer_class(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    @classmethod
    @step
    def inner_class(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"


class TestMethods:
    """Methods, static and class methods work, with ``self``/``cls`` not recorded."""

    def test_every_kind_of_method(self, um: Umlaut) -> None:
        model = _Model(3)
        assert model.fit(2) == 6
        assert _Model.outer_static(1) == 2 and model.inner_static(1) == 3
        assert _Model.outer_class(1) == "_Model:1" and model.inner_class(2) == "_Model:2"
        assert step(model.fit)(4) == 12  # a bound method, decorated afterwards
        got = runs(um)
        assert [r.name for r in got] == [
            "_Model.fit",
            "_Model.outer_static",
            "_Model.inner_static",
            "_Model.outer_class",
            "_Model.inner_class",
            "_Model.fit",  # the outer one ...
            "_Model.fit",  # ... and the inner, decorated, one: its child
        ]
        assert all(dict(r.params) == {"x": r.params["x"]} for r in got)
        assert got[-1].parent_id == got[-2].run_id

    def test_signatures_are_kept(self) -> None:
        model = _Model(1)
        assert list(inspect.signature(_Model.fit).parameters) == ["self", "x"]
        assert list(inspect.signature(model.fit).parameters) == ["x"]
        for name in ("outer_static", "inner_static", "outer_class", "inner_class"):
            assert list(inspect.signature(getattr(model, name)).parameters) == ["x"]


class TestGenerators:
    """A generator's run lasts until it is exhausted, closed or raises."""

    def test_exhausted(self, um: Umlaut) -> None:
        @step
        def batches(n: int) -> Generator[int, None, str]:
            yield from range(n)
            return "done"

        def consume() -> Iterator[int]:
            result = yield from batches(3)
            assert result == "done"

        assert list(consume()) == [0, 1, 2]
        run = only(um)
        assert run.status is RunStatus.FINISHED
        assert json.loads(run.tags[RETURN_TAG]) == "done"

    def test_closed_early(self, um: Umlaut) -> None:
        cleaned = []

        @step
        def batches() -> Generator[int, None, None]:
            try:
                yield 1
                yield 2
            finally:
                cleaned.append(current_run())

        gen = batches()
        assert next(gen) == 1
        gen.close()
        run = only(um)
        assert cleaned[0] is not None and cleaned[0].run_id == run.run_id
        assert (run.status, run.tags[CLOSED_TAG]) == (RunStatus.FINISHED, "true")

    def test_raising(self, um: Umlaut) -> None:
        error = RuntimeError("bad batch")

        @step
        def batches() -> Iterator[int]:
            yield 1
            raise error

        gen = batches()
        assert next(gen) == 1
        with pytest.raises(RuntimeError) as caught:
            next(gen)
        assert caught.value is error
        assert only(um).status is RunStatus.FAILED

    def test_send_and_throw_pass_through(self, um: Umlaut) -> None:
        @step
        def echo() -> Generator[Any, Any, None]:
            received: Any = None
            while True:
                try:
                    received = yield received
                except KeyError as exc:
                    received = f"caught {exc.args[0]}"

        gen = echo()
        assert next(gen) is None
        assert gen.send("a") == "a"
        assert gen.throw(KeyError("k")) == "caught k"
        with pytest.raises(ValueError):
            gen.throw(ValueError("out"))
        assert only(um).status is RunStatus.FAILED

    def test_never_iterated_leaves_no_run(self, um: Umlaut) -> None:
        @step
        def batches() -> Generator[int, None, None]:
            yield 1

        batches().close()
        assert runs(um) == []


class TestAsync:
    """Coroutines and async generators are tracked like their sync counterparts."""

    def test_coroutine(self, um: Umlaut) -> None:
        error = ValueError("no")

        @step
        async def score(x: int) -> int:
            await asyncio.sleep(0)
            if x < 0:
                raise error
            return x * 2

        assert asyncio.run(score(4)) == 8
        with pytest.raises(ValueError) as caught:
            asyncio.run(score(-1))
        assert caught.value is error
        assert [(r.params["x"], r.status) for r in runs(um)] == [
            (4, RunStatus.FINISHED),
            (-1, RunStatus.FAILED),
        ]

    def test_async_generator(self, um: Umlaut) -> None:
        @step
        async def stream(n: int) -> AsyncGenerator[int, None]:
            for i in range(n):
                await asyncio.sleep(0)
                yield i

        async def main() -> tuple[list[int], int]:
            items = [i async for i in stream(3)]
            early = stream(5)
            first = await early.asend(None)
            await early.aclose()
            return items, first

        assert asyncio.run(main()) == ([0, 1, 2], 0)
        first, second = runs(um)
        assert first.status is second.status is RunStatus.FINISHED
        assert CLOSED_TAG not in first.tags and second.tags[CLOSED_TAG] == "true"


class TestRecursion:
    """Each recursive call is a run nested in its caller's."""

    def test_depth_three_nests(self, um: Umlaut) -> None:
        @step
        def factorial(n: int) -> int:
            return 1 if n <= 1 else n * factorial(n - 1)

        assert factorial(3) == 6
        outer, middle, inner = runs(um)
        assert [r.params["n"] for r in (outer, middle, inner)] == [3, 2, 1]
        assert outer.parent_id is None
        assert middle.parent_id == outer.run_id and inner.parent_id == middle.run_id


class TestRecorded:
    """Arguments become bounded params; a returned mapping of numbers, metrics."""

    def test_bound_arguments_with_defaults(self, um: Umlaut) -> None:
        @step
        def fit(x: int, lr: float = 0.1, *layers: int, seed: int = 0, **extra: Any) -> None:
            pass

        fit(1, 0.5, 64, 32, tag="a")
        assert dict(only(um).params) == {
            "x": 1,
            "lr": 0.5,
            "layers": [64, 32],
            "seed": 0,
            "tag": "a",
        }

    def test_include_and_exclude(self, um: Umlaut) -> None:
        @step(include=["a", "b"], exclude="b")
        def fit(a: int, b: int, c: int) -> None:
            pass

        fit(1, 2, 3)
        assert dict(only(um).params) == {"a": 1}
        with pytest.raises(ConfigurationError, match="not parameters"):
            step(include=["typo"])(fit)

    def test_a_huge_string_and_a_big_array_make_small_params(self, um: Umlaut) -> None:
        np = pytest.importorskip("numpy")
        pd = pytest.importorskip("pandas")
        array = np.arange(2_000_000, dtype=np.float64).reshape(1000, 2000)
        frame = pd.DataFrame({"a": range(1000), "b": ["x"] * 1000})

        @step
        def fit(text: str, x: Any, frame: Any) -> str:
            return text

        text = "é" * 10_000_000
        assert fit(text, array, frame) is text
        run = only(um)
        assert run.params["text"].startswith("é" * MAX_TEXT)
        assert len(run.params["text"]) < MAX_TEXT + 50
        assert run.params["x"] == {
            "type": "numpy.ndarray",
            "shape": [1000, 2000],
            "dtype": "float64",
            "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
        }
        assert run.params["frame"]["shape"] == [1000, 2] and run.params["frame"]["sha256"]
        assert len(json.dumps(dict(run.params), ensure_ascii=False)) < 2_000
        assert len(run.tags[RETURN_TAG]) < 2_100

    def test_returned_numbers_become_metrics(self, um: Umlaut) -> None:
        result = {"accuracy": 0.9, "n": 3, "converged": True, "name": "lr"}

        @pipeline
        def evaluate() -> dict[str, Any]:
            run = current_run()
            assert run is not None
            run.log_metric("loss", 0.5)  # through the context: lands in this run
            return result

        assert evaluate() is result
        run = only(um)
        assert {k: m.last for k, m in run.metrics.items() if k != "duration_s"} == {
            "accuracy": 0.9,
            "n": 3.0,
            "loss": 0.5,
        }
        assert run.tags[KIND_TAG] == "pipeline"

    def test_log_return_false_leaves_the_result_unread(self, um: Umlaut) -> None:
        @step(log_return=False)
        def evaluate() -> dict[str, float]:
            return {"accuracy": 0.9}

        evaluate()
        run = only(um)
        assert RETURN_TAG not in run.tags and set(run.metrics) == {"duration_s"}

    def test_an_argument_that_cannot_be_summarised_is_described(self, um: Umlaut) -> None:
        class Hostile:
            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        @step
        def fit(model: Any) -> str:
            return "ok"

        assert fit(Hostile()) == "ok"
        assert only(um).params["model"]["type"].endswith("Hostile")


class TestSummaries:
    """Summaries are small, JSON-ready, and never import numpy or pandas."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            (True, True),
            (3, 3),
            (float("nan"), "nan"),
            (float("-inf"), "-inf"),
            (2**300, {"type": "int", "bits": 301}),
            ("\ud800x", "\\ud800x"),
            (b"ab", {"type": "bytes", "size": 2, "sha256": hashlib.sha256(b"ab").hexdigest()}),
            ({3, 1}, [1, 3]),
            ({"a": (1, "b")}, {"a": [1, "b"]}),
            (len, {"type": "function", "name": "builtins.len"}),
        ],
    )
    def test_values(self, value: Any, expected: Any) -> None:
        assert summarise(value) == expected

    def test_large_containers_and_objects_are_described(self) -> None:
        big = summarise(list(range(10_000)))
        assert big["type"] == "list" and big["len"] == 10_000 and len(big["repr"]) < 250

        class Thing:
            pass

        described = summarise(Thing())
        assert described["type"].endswith("Thing") and "0x" not in described["repr"]

    def test_bounded_text(self) -> None:
        assert bounded_text("abc", 2) == "ab…[1 more characters]"

    def test_the_decorator_imports_neither_numpy_nor_pandas(self) -> None:
        code = (
            "import sys, umlaut_core.experiments as e;"
            "from umlaut_core.experiments.summaries import summarise;"
            "e.step(lambda x: x); summarise([1, 'a', object()]);"
            "print(sorted(m for m in ('numpy', 'pandas') if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert out.stdout.strip() == "[]"


class TestOffSwitch:
    """Off, a decorated function is a pass-through that writes nothing."""

    def test_off_writes_nothing_and_behaves_the_same(self, um: Umlaut) -> None:
        set_tracking_enabled(False)
        value = object()

        @step
        def fit() -> object:
            return value

        @step
        def batches() -> Iterator[int]:
            yield from (1, 2)

        @step
        async def score() -> int:
            return 5

        assert fit() is value and list(batches()) == [1, 2] and asyncio.run(score()) == 5
        assert runs(um) == []

    @pytest.mark.parametrize("word", ["off", "0", "false", "no", "OFF"])
    def test_environment(self, monkeypatch: pytest.MonkeyPatch, word: str) -> None:
        monkeypatch.setenv("UMLAUT_TRACKING", word)
        set_tracking_enabled(None)
        assert tracking_enabled() is False
        monkeypatch.setenv("UMLAUT_TRACKING", "on")
        set_tracking_enabled(None)
        assert tracking_enabled() is True

    def test_profile_key(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        (tmp_path / "pyproject.toml").write_text(
            "[tool.umlaut.profiles.ci]\ntracking = false\n", encoding="utf-8"
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("UMLAUT_TRACKING", raising=False)
        monkeypatch.setenv("UMLAUT_PROFILE", "ci")
        set_tracking_enabled(None)
        assert tracking_enabled() is False

    def test_a_facade_with_tracking_off(self) -> None:
        quiet = Umlaut("memory:", tracking=False)

        @step(umlaut=quiet)
        def fit() -> int:
            return 1

        assert fit() == 1
        assert runs(quiet) == []

    def test_a_bad_value_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigurationError, match="not a switch"):
            resolve_settings("memory:", environ={"UMLAUT_TRACKING": "maybe"})


class _BrokenStore(MemoryExperimentStore):
    """An experiment store whose writes all fail, as a store that went down."""

    def write(self, writes: Sequence[Any]) -> None:
        raise BackendError("the experiment store is down")


class _BrokenBackend:
    @hookimpl
    def umlaut_register_backends(self, registry: Any) -> None:
        registry.add_tracker("broken", MemoryTracker)
        registry.add_experiment_store("broken", _BrokenStore)


class TestTrackingFailures:
    """When tracking fails the step still runs and returns; the failure is logged."""

    def test_a_store_that_refuses_every_write(
        self, plugin_manager: Any, register_plugin: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        register_plugin(_BrokenBackend())
        broken = Umlaut("broken:", plugin_manager=plugin_manager, exit_flush_timeout=0.2)

        @step(umlaut=broken)
        def fit(x: int) -> int:
            run = current_run()
            assert run is not None
            run.log_metric("loss", 0.1)
            return x + 1

        with caplog.at_level(logging.WARNING, logger="umlaut"):
            assert [fit(1), fit(2)] == [2, 3]
            # Steps do not wait for the store; a flush does, and says it failed.
            assert broken.flush(timeout=0.3) is False
        assert "refused" in caplog.text
        broken.close()

    def test_a_backend_without_experiments(
        self, plugin_manager: Any, register_plugin: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        class NoExperiments:
            @hookimpl
            def umlaut_register_backends(self, registry: Any) -> None:
                registry.add_tracker("noexp", MemoryTracker)

        register_plugin(NoExperiments())
        bare = Umlaut("noexp:", plugin_manager=plugin_manager)

        @step(umlaut=bare)
        def fit(x: int) -> int:
            assert current_run() is None
            return x + 1

        with caplog.at_level(logging.WARNING, logger="umlaut"):
            assert [fit(1), fit(2)] == [2, 3]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "start a training run" in warnings[0].getMessage()

    def test_a_default_store_that_cannot_open(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("UMLAUT_TRACKING_URI", "nosuchscheme://nowhere")
        set_default_umlaut(None)

        @step
        def fit(x: int) -> int:
            return x + 1

        with caplog.at_level(logging.WARNING, logger="umlaut"):
            assert [fit(1), fit(2)] == [2, 3]
        assert "default Umlaut()" in caplog.text


@pytest.mark.slow
class TestExample:
    """examples/pipeline_decorator.py: two executions, three steps each, the best tracked."""

    def test_runs_on_sqlite(self, tmp_path: Path) -> None:
        pytest.importorskip("sklearn")
        uri = f"sqlite:///{tmp_path / 'example.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("UMLAUT_")}
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), uri],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        with Umlaut(uri) as um:
            found = um.search_training_runs("iris-pipeline", limit=100).runs
            parents = [r for r in found if r.parent_id is None]
            assert len(parents) == 2 and len(found) == 8
            for parent in parents:
                steps = sorted(str(r.name) for r in found if r.parent_id == parent.run_id)
                assert steps == ["classify", "reduce", "scale"]
                assert parent.tags[KIND_TAG] == "pipeline" and "accuracy" in parent.metrics
            best = max(parents, key=lambda r: r.metrics["accuracy"].last)
            assert um.get_training_run(best.run_id).versions
            assert um.get_version("Iris Classifier", stage="Production").version == 1
