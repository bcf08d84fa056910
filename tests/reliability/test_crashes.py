"""SIGKILL in the middle of run_batch and track_model; the database server restarted
under a running client. The store must stay consistent and need no repair."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import pytest

from umlaut_core.exceptions import BackendError
from umlaut_core.packer import unpack
from umlaut_core.testing.models import Echo, Threshold

pytestmark = pytest.mark.slow

BATCH = 40_000


def _batch_count(backend: Any, tag: str) -> int:
    pattern = f'%"batch":"{tag}"%'
    return int(backend.sql("SELECT count(*) FROM umlaut_runs WHERE tags LIKE :p", p=pattern)[0][0])


def _kill_when(w: Any, word: str, delay: float) -> list[str]:
    """Wait for ``word`` on the worker's stdout, SIGKILL it after ``delay`` s, and
    return everything it printed (so the caller can tell which phase it died in)."""
    (proc,) = w.procs
    assert proc.stdout is not None
    seen = []
    while True:
        line = proc.stdout.readline().strip()
        assert line, f"worker ended before {word!r}: {proc.communicate()[1][-3000:]}"
        seen.append(line)
        if line == word:
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return seen + out.split()


class TestKilledBatch:
    """run_batch runs every model, then writes all records at once: killed in either
    phase, the batch is wholly present or wholly absent, and the next process works."""

    @pytest.mark.parametrize("delivery", ["sync", "default"])
    def test_killed_while_writing(self, backend: Any, workers: Any, delivery: str) -> None:
        if backend.name == "sqlite" and delivery == "default":
            pytest.skip("SQLite's default delivery is sync: covered by the sync case")
        setup = backend.open(delivery="sync")
        setup.track_model(Echo(), "batched")
        setup.close()
        options = {} if delivery == "default" else {"delivery": "sync"}
        mid_write = 0
        for attempt in range(3):
            tag = f"w{attempt}"
            w = workers(
                [
                    backend.job(
                        op="batch",
                        name="batched",
                        count=BATCH,
                        tag=tag,
                        options=options,
                        wait=False,
                    )
                ],
                backend.env,
            )
            w.wait_for(w.procs[0], "ready")
            printed = _kill_when(w, "writing", random.uniform(0.0, 0.15))
            mid_write += "written" not in printed
            heir = backend.open()  # the next process: same URIs, same spool, no repair
            assert heir.flush(timeout=120)
            assert _batch_count(backend, tag) in (0, BATCH)
            heir.close()
        assert mid_write >= 1, "every kill came after the write finished; raise BATCH"
        heir = backend.open(delivery="sync")
        heir.run_batch("batched", [{"i": 1}, {"i": 2}], tags={"batch": "after"})
        assert _batch_count(backend, "after") == 2
        heir.close()

    def test_killed_while_running_models(self, backend: Any, workers: Any) -> None:
        setup = backend.open(delivery="sync")
        setup.track_model(Echo(), "batched")
        setup.close()
        w = workers(
            [
                backend.job(
                    op="batch",
                    name="batched",
                    count=BATCH,
                    tag="m",
                    model_phase_marker=True,
                    wait=False,
                )
            ],
            backend.env,
        )
        w.wait_for(w.procs[0], "ready")
        printed = _kill_when(w, "modelling", 0.0)
        assert "writing" not in printed
        heir = backend.open()
        assert heir.flush(timeout=60)
        assert _batch_count(backend, "m") == 0
        assert backend.counts()["umlaut_runs"] == 0
        heir.run_model("batched", {"i": 0})
        assert heir.flush(timeout=60)
        assert backend.counts()["umlaut_runs"] == 1
        heir.close()


class TestKilledTracking:
    """A process killed while tracking (bundles large enough that the kill often lands
    in the upload): every version points at a whole, verifiable bundle."""

    ROUNDS = 3

    def test_no_version_points_at_a_missing_or_partial_bundle(
        self, backend: Any, workers: Any
    ) -> None:
        backend.open().close()
        # > the S3 store's 8 MiB multipart threshold: uploads are multipart there.
        pad = 9 * 1024 * 1024
        for attempt in range(self.ROUNDS):
            w = workers(
                [
                    backend.job(
                        op="track_forever", worker=attempt, name="killed", pad=pad, wait=False
                    )
                ],
                backend.env,
            )
            w.wait_for(w.procs[0], "ready")
            _kill_when(w, "tracking", random.uniform(0.0, 1.0))

        heir = backend.open()
        versions = heir.list_versions("killed")
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        assert len(versions) >= self.ROUNDS
        for mv in versions:
            data = heir.artifact_store.get(mv.artifact_uri)
            loaded = unpack(data, heir._pm, expected_digest=mv.digest, env_policy="ignore")
            assert loaded.digest == mv.digest
        referenced = {mv.artifact_uri.rsplit("/", 1)[-1] for mv in versions}
        bundles = {k.rsplit("/", 1)[-1] for k in backend.objects() if k.endswith(".zip")}
        # A kill between upload and registration leaves an unreferenced bundle (at most
        # one per kill): garbage, never a broken version.
        assert referenced <= bundles and len(bundles - referenced) <= self.ROUNDS
        mv = heir.track_model(Threshold(3), "killed", stage="Production")
        assert mv.version == len(versions) + 1
        assert heir.run_model("killed", {"x": 4}, stage="Production")["above"] is True
        heir.close()


@pytest.mark.postgres
class TestServerRestart:
    """PostgreSQL restarts (and goes away briefly) under a live client: calls fail
    with a clear BackendError or succeed, and the same client recovers by itself."""

    def test_sync_client_recovers_without_being_recreated(
        self, pg_backend: Any, postgres_server: Any
    ) -> None:
        backend = pg_backend
        u = backend.open(delivery="sync")
        u.track_model(Threshold(1), "restart", stage="Production")
        assert u.run_model("restart", {"x": 2}, stage="Production")["above"] is True
        postgres_server.restart()
        outcomes = []
        for call in (
            lambda: u.run_model("restart", {"x": 2}, stage="Production"),
            lambda: u.run_model("restart", {"x": 2}, version=1),
            lambda: u.track_model(Threshold(2), "restart"),
            lambda: u.promote("restart", 1, "Staging"),
            lambda: u.history("restart"),
        ):
            try:
                call()
                outcomes.append("ok")
            except BackendError as exc:
                assert "check that the server is running" in str(exc)
                outcomes.append("error")
        postgres_server.pause()
        try:
            with pytest.raises(BackendError, match="server is running") as info:
                u.run_model("restart", {"x": 2}, stage="Production")
            assert backend.tracking.split("@")[-1] in str(info.value)
        finally:
            postgres_server.resume()
        # Recovered: every kind of call works on the same client object.
        assert u.run_model("restart", {"x": 2}, stage="Production")["above"] is True
        mv = u.track_model(Threshold(3), "restart", stage="Production")
        assert u.run_model("restart", {"x": 2}, stage="Production") == {
            "above": False,
            "limit": 3,
        }
        assert u.promote("restart", mv.version, "Archived").to_version == mv.version
        ok_before = outcomes.count("ok")
        records = u.history("restart", limit=100)
        assert len(records) == 2 + 1 + outcomes[:2].count("ok")
        assert ok_before >= 3, outcomes
        u.close()

    def test_spooled_client_loses_no_record(self, pg_backend: Any, postgres_server: Any) -> None:
        backend = pg_backend
        u = backend.open()
        assert u.delivery_mode == "spooled"
        u.track_model(Threshold(1), "restart", stage="Production")
        u.run_model("restart", {"x": 2}, stage="Production")
        assert u.flush(timeout=30)
        postgres_server.restart()
        for i in range(50):
            u.run_model("restart", {"x": i}, stage="Production")
        postgres_server.pause()
        try:
            for i in range(50):  # served from the last resolution; records spooled
                assert u.run_model("restart", {"x": i}, stage="Production")["limit"] == 1
            assert u.pending().depth > 0
        finally:
            postgres_server.resume()
        assert u.flush(timeout=120), u.pending()
        assert backend.counts()["umlaut_runs"] == 101
        ids = backend.sql("SELECT count(DISTINCT id) FROM umlaut_runs")[0][0]
        assert ids == 101
        u.track_model(Threshold(2), "restart", stage="Production")
        assert u.run_model("restart", {"x": 2}, stage="Production")["limit"] == 2
        u.close()
