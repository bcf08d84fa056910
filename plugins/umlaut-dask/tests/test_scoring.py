"""Batch scoring on a real LocalCluster: one audit record per row, whatever happens."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.bag as db
import dask.dataframe as dd
import pandas as pd
import pytest
from _task_helpers import FailAfterWrite, FailFrom, PromoteOnce, executing
from umlaut_dask import RowKeyError, new_batch_id, run_batch, score_bag, score_frame

from umlaut_core import ConfigurationError, Umlaut
from umlaut_core.ids import decode_id, encode_id

META = {"band": "int64", "score": "float64"}


class Scorer:
    """A cheap deterministic model: what the row holds decides the output."""

    def run(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"band": int(row["x"]) % 7, "score": row["x"] * 0.5 + row["y"]}


class KillOnce(Scorer):
    """Kills its own worker process at one row, once (a marker file says it did)."""

    def __init__(self, marker: str, at: int) -> None:
        self.marker, self.at = marker, at

    def run(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["id"] == self.at and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run(row)


class CallLog(Scorer):
    """Appends every input it is called with to a file (shared by worker processes)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self, row: dict[str, Any]) -> dict[str, Any]:
        with open(self.path, "a") as f:
            f.write(f"{row['id']!r}\n")
        return super().run(row)


def frame(rows: int, partitions: int) -> pd.DataFrame:
    ids = pd.Series(range(rows), dtype="int64") * 3 + 1_000  # keys are not positions
    return pd.DataFrame({"id": ids, "x": range(rows), "y": [0.25] * rows})


def settle(client: Any) -> None:
    """Wait until no worker runs a task (a cancelled task is not stopped, only
    forgotten by the scheduler)."""
    deadline = time.monotonic() + 30
    while any(client.run(executing).values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)


def counts(uri: str, model_name: str) -> tuple[int, int]:
    """``count(*), count(DISTINCT id)`` of the model's audit records, straight in SQL."""
    sql = "SELECT count(*), count(DISTINCT id) FROM umlaut_runs WHERE model_name = "
    if uri.startswith("sqlite"):
        with sqlite3.connect(uri.removeprefix("sqlite:///")) as conn:
            found = conn.execute(sql + "?", (model_name,)).fetchone()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(uri.replace("postgresql+psycopg", "postgresql")) as conn:
            found = conn.execute(sql + "%s", (model_name,)).fetchone()
    assert found is not None
    return int(found[0]), int(found[1])


@pytest.fixture
def umlaut(store: tuple[str, str]) -> Iterator[Umlaut]:
    with Umlaut(store[0], store[1], delivery="sync") as facade:
        yield facade


@pytest.fixture
def name() -> str:
    return f"dask {uuid.uuid4().hex[:10]}"


@pytest.fixture
def log(umlaut: Umlaut, name: str, tmp_path: Path) -> Path:
    """The file every input is logged to: ``name`` is tracked as a :class:`CallLog`."""
    path = tmp_path / "calls.log"
    umlaut.track_model(CallLog(str(path)), name)
    return path


class TestExactlyOnce:
    """Every row gets exactly one audit record, with the outputs a local batch gives."""

    def test_100k_rows_one_record_each_outputs_as_local(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str
    ) -> None:
        umlaut.track_model(Scorer(), name, stage="Production")
        data = frame(100_000, 8)
        scored = score_frame(
            umlaut, dd.from_pandas(data, npartitions=8), name, key="id",
            stage="Production", meta=META, client=client,
        )  # fmt: skip
        assert scored.rows == 100_000 and scored.partitions == 8 and not scored.skipped
        assert scored.writer == ("client" if store[0].startswith("sqlite") else "workers")
        assert counts(store[0], name) == (100_000, 100_000)
        out = scored.frame.compute().sort_index()
        record = umlaut.history(name, limit=1)[0]
        assert record.tags["umlaut.batch_id"] == scored.batch_id
        assert record.tags["umlaut.selector"] == "stage=Production"
        assert record.selector == "version=1"  # the version pinned on the client
        assert record.id in set(out["umlaut_id"])
        local = umlaut.run_batch(name, data, version=1, return_outputs=True)  # all 100k
        assert out["band"].tolist() == [o["band"] for o in local]
        assert out["score"].tolist() == [o["score"] for o in local]
        # …and the audit records hold the same outputs, each under its row's input.
        batch_ms = decode_id(scored.batch_id)[0]  # the batch's ids sort before local ones
        stored = umlaut.history(name, limit=1_000, before=encode_id(batch_ms + 1, 0))
        by_id = {row: o for row, o in zip(data["id"], local, strict=True)}
        assert len(stored) == 1_000
        assert {r.tags["umlaut.batch_id"] for r in stored} == {scored.batch_id}
        assert all(r.output == by_id[r.inputs["id"]] for r in stored)

    def test_one_pinned_version_while_the_stage_moves(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str, tmp_path: Path
    ) -> None:
        umlaut.track_model(Scorer(), name, stage="Production")
        data = frame(4_000, 8)
        promote = PromoteOnce(*store, name, str(tmp_path / "promoted"))
        scored = score_frame(
            umlaut, dd.from_pandas(data, npartitions=8), name, key="id", stage="Production",
            meta=META, client=client, after_partition=promote,
        )  # fmt: skip
        with Umlaut(*store, resolve_ttl=0) as fresh:  # the client's facade caches stages
            assert fresh.get_version(name, stage="Production").version == 2  # moved mid-job
        assert scored.version.version == 1
        records = umlaut.history(name, limit=5_000)
        assert len(records) == 4_000 and {r.version for r in records} == {1}
        assert scored.frame.compute().sort_index()["band"].tolist() == (data["x"] % 7).tolist()

    def test_failure_after_write_on_first_attempt(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str, tmp_path: Path
    ) -> None:
        umlaut.track_model(Scorer(), name)
        (tmp_path / "markers").mkdir()
        scored = score_frame(
            umlaut, dd.from_pandas(frame(4_000, 4), npartitions=4), name, key="id",
            meta=META, client=client, retries=2,
            after_partition=FailAfterWrite(str(tmp_path / "markers")),
        )  # fmt: skip
        assert len(list((tmp_path / "markers").iterdir())) == 4  # every partition failed once
        assert scored.rows == 4_000
        assert counts(store[0], name) == (4_000, 4_000)
        assert len(scored.frame.compute()) == 4_000

    def test_worker_killed_mid_partition(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str, tmp_path: Path
    ) -> None:
        data = frame(6_000, 3)
        kill_at = int(data["id"].iloc[3_500])  # in the middle of the second partition
        umlaut.track_model(KillOnce(str(tmp_path / "killed"), kill_at), name)
        scored = score_frame(
            umlaut, dd.from_pandas(data, npartitions=3), name, key="id", meta=META,
            client=client, retries=3,
        )  # fmt: skip
        assert (tmp_path / "killed").exists()
        assert counts(store[0], name) == (6_000, 6_000)
        assert scored.frame.compute().sort_index()["band"].tolist() == (data["x"] % 7).tolist()
        client.wait_for_workers(2, timeout=60)

    def test_interrupted_batch_resumed_by_id(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str, log: Path
    ) -> None:
        data = dd.from_pandas(frame(5_000, 5), npartitions=5)
        batch = new_batch_id()
        with pytest.raises(RuntimeError, match="interrupted") as info:
            score_frame(
                umlaut, data, name, key="id", meta=META, client=client, retries=0,
                batch_id=batch, after_partition=FailFrom(3),
            )  # fmt: skip
        assert any(batch in note for note in getattr(info.value, "__notes__", []))
        settle(client)  # cancelled tasks run on to their end on the workers
        stored = counts(store[0], name)[0]
        assert stored % 1_000 == 0 and stored < 5_000  # whole partitions, never part of one
        log.write_text("")
        resumed = score_frame(
            umlaut, data, name, key="id", meta=META, client=client, batch_id=batch
        )
        assert len(resumed.skipped) == stored // 1_000
        assert resumed.rows == 5_000 - 1_000 * len(resumed.skipped)
        assert counts(store[0], name) == (5_000, 5_000)
        calls = log.read_text().splitlines()
        assert len(calls) == resumed.rows  # skipped partitions never ran the model
        again = score_frame(umlaut, data, name, key="id", meta=META, client=client, batch_id=batch)
        assert again.rows == 0 and again.skipped == (0, 1, 2, 3, 4)

    def test_no_record_from_metadata_rows(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str, log: Path
    ) -> None:
        data = frame(300, 3)
        scored = score_frame(
            umlaut, dd.from_pandas(data, npartitions=3), name, key="id", meta=META,
            client=client,
        )  # fmt: skip
        scored.frame.compute()
        scored.frame.map_partitions(len).compute()  # more graph work: still no model call
        calls = sorted(int(line) for line in log.read_text().splitlines())
        assert calls == sorted(data["id"].tolist())
        assert counts(store[0], name) == (300, 300)
        assert sorted(r.inputs["id"] for r in umlaut.history(name, limit=1_000)) == calls


class TestRowKeys:
    """Keys that would make two rows share one record are refused, never retried."""

    def test_a_key_repeated_across_partitions(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str, log: Path
    ) -> None:
        data = frame(4_000, 4)
        data.loc[3_000:3_009, "id"] = data.loc[0:9, "id"].to_numpy()  # partition 3 repeats 0
        with pytest.raises(RowKeyError, match="repeats across partitions: 10 of the 1000") as info:
            score_frame(
                umlaut, dd.from_pandas(data, npartitions=4), name, key="id", meta=META,
                client=client,
            )  # fmt: skip
        assert not getattr(info.value, "__notes__", [])  # no advice to resume: same keys
        settle(client)
        stored, distinct = counts(store[0], name)
        assert stored == distinct and stored <= 3_990
        assert len(log.read_text().splitlines()) <= 4_000  # no partition ran twice

    def test_a_key_repeated_in_a_partition_or_missing(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str, log: Path
    ) -> None:
        data = frame(300, 1)
        data.loc[7, "id"] = data.loc[3, "id"]
        with pytest.raises(RowKeyError, match=r"repeats '1009' in partition 0"):
            score_frame(
                umlaut, dd.from_pandas(data, npartitions=1), name, key="id", meta=META,
                client=client, retries=3,
            )  # fmt: skip
        items = [{"id": None if i == 5 else f"k{i}", "x": i, "y": 1.0} for i in range(50)]
        with pytest.raises(RowKeyError, match="missing"):
            score_bag(
                umlaut, db.from_sequence(items, npartitions=1), name, key="id", meta=META,
                client=client,
            )  # fmt: skip
        settle(client)
        assert not log.exists() and counts(store[0], name) == (0, 0)  # refused before running


class TestOtherInputs:
    """Bags of dicts and ordinary iterables are scored the same way."""

    def test_bag_of_dicts(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str
    ) -> None:
        umlaut.track_model(Scorer(), name)
        items = [{"id": f"k{i}", "x": i, "y": 1.0} for i in range(500)]
        scored = score_bag(
            umlaut, db.from_sequence(items, npartitions=4), name, key="id", meta=META,
            client=client,
        )  # fmt: skip
        out = scored.frame.compute()
        assert out.loc["k10", "band"] == 3 and len(out) == 500
        assert counts(store[0], name) == (500, 500)

    def test_run_batch_matches_local(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str
    ) -> None:
        umlaut.track_model(Scorer(), name)
        inputs = [{"id": i, "x": i, "y": 0.0} for i in range(1_000)]
        remote = run_batch(umlaut, name, inputs, client=client, partition_rows=300)
        local = umlaut.run_batch(name, inputs)
        assert remote == local
        assert counts(store[0], name) == (2_000, 2_000)

    def test_outputs_only_in_the_audit_trail(
        self, client: Any, umlaut: Umlaut, store: tuple[str, str], name: str
    ) -> None:
        umlaut.track_model(Scorer(), name)
        scored = score_frame(
            umlaut, dd.from_pandas(frame(900, 3), npartitions=3), name, key="id", meta=META,
            client=client, return_outputs=False,
        )  # fmt: skip
        assert scored.rows == 900 and len(scored.frame.compute()) == 0
        assert counts(store[0], name) == (900, 900)

    def test_memory_tracker_is_refused(self, client: Any, name: str, tmp_path: Path) -> None:
        with Umlaut("memory:", str(tmp_path / "a")) as facade:
            facade.track_model(Scorer(), name)
            with pytest.raises(ConfigurationError, match="cannot reach"):
                score_frame(
                    facade, dd.from_pandas(frame(10, 1), npartitions=1), name, key="id",
                    client=client,
                )  # fmt: skip
