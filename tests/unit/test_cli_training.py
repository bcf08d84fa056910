"""``umlaut runs`` and ``umlaut datasets`` on the embedded SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from umlaut_core import Umlaut
from umlaut_core.cli import make_cli


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'umlaut.db'}"


def _invoke(store: str, *args: str) -> str:
    result = CliRunner().invoke(make_cli(), ["--tracking-uri", store, *args])
    assert result.exit_code == 0, result.output
    return result.output


class TestRuns:
    def test_list_filter_order_and_show(self, store: str) -> None:
        with Umlaut(store) as um:
            for c in (0.1, 1.0, 10.0):
                with um.start_run("sweep", name=f"C={c}") as run:
                    run.log_param("C", c)
                    run.log_metric("acc", 1 - 1 / (c + 2))
            best = run.run_id
        rows = json.loads(
            _invoke(store, "runs", "list", "sweep", "--filter", "params.C >= 1",
                    "--order-by", "metrics.acc DESC", "--format", "json")
        )  # fmt: skip
        assert [r["name"] for r in rows] == ["C=10.0", "C=1.0"]
        shown = json.loads(_invoke(store, "runs", "show", best, "--format", "json"))
        assert shown["params"] == {"C": 10.0} and shown["status"] == "FINISHED"
        assert shown["metrics"][0]["key"] == "acc"

    def test_paging_prints_the_next_token(self, store: str) -> None:
        with Umlaut(store) as um:
            for i in range(3):
                with um.start_run("pages", name=str(i)):
                    pass
        result = CliRunner().invoke(
            make_cli(), ["--tracking-uri", store, "runs", "list", "pages", "--limit", "2"]
        )
        assert result.exit_code == 0 and "more: --page-token" in result.output

    def test_an_unknown_run_is_one_clear_line(self, store: str) -> None:
        result = CliRunner().invoke(make_cli(), ["--tracking-uri", store, "runs", "show", "nope"])
        assert result.exit_code == 1
        assert "TrainingRunNotFoundError" in result.output and "Traceback" not in result.output


class TestDatasets:
    def test_list_versions_and_profile(self, store: str) -> None:
        pd = pytest.importorskip("pandas")
        pytest.importorskip("pyarrow")
        frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]})
        with Umlaut(store) as um:
            um.track_dataset(frame, "toy", target="label")
        assert "toy" in _invoke(store, "datasets", "list")
        assert "3" in _invoke(store, "datasets", "versions", "toy")
        table = _invoke(store, "datasets", "show", "toy")
        assert "label" in table and "target" in table
        markdown = _invoke(store, "datasets", "show", "toy", "--format", "markdown")
        assert "| x |" in markdown or "x" in markdown
        data = json.loads(_invoke(store, "datasets", "show", "toy", "--format", "json"))
        assert data["rows"] == 3 and data["used_by"] == []
