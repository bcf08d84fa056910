"""Many threads (and, where declared, processes) on one store lose nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

from ..._api import Umlaut
from ...protocols import Capability, Tracker
from ..models import Threshold
from ._base import TrackerTestBase

__all__ = ["ConcurrencyTests"]

_TRACK_IN_PROCESS = textwrap.dedent(
    """
    import json, sys
    from umlaut_core import Umlaut
    from umlaut_core.testing.models import Threshold
    tracking, artifacts, name, start, count = json.loads(sys.argv[1])
    with Umlaut(tracking, artifacts, delivery="sync") as u:
        for i in range(start, start + count):
            u.track_model(Threshold(i), name)
            u.run_model(name, {"x": i}, version=1, reference_id=f"p{start}")
    """
)


class ConcurrencyTests(TrackerTestBase):
    """Concurrent callers get distinct versions and every audit record."""

    def test_threads_record_every_call(self, umlaut: Umlaut, model_name: str) -> None:
        umlaut.track_model(Threshold(0), model_name)

        def worker(t: int) -> None:
            for i in range(25):
                umlaut.run_model(model_name, {"x": t * 100 + i}, reference_id=f"t{t}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(worker, range(8)))
        records = umlaut.history(model_name, limit=1000)
        assert sorted(r.inputs["x"] for r in records) == sorted(
            t * 100 + i for t in range(8) for i in range(25)
        )
        assert len({r.id for r in records}) == 200

    def test_threads_tracking_get_distinct_versions(self, umlaut: Umlaut, model_name: str) -> None:
        with ThreadPoolExecutor(4) as pool:
            versions = list(
                pool.map(lambda i: umlaut.track_model(Threshold(i), model_name), range(12))
            )
        assert sorted(v.version for v in versions) == list(range(1, 13))
        assert len({v.digest for v in versions}) == 12
        assert [v.version for v in umlaut.list_versions(model_name)] == list(range(1, 13))

    def test_processes_share_one_store(
        self, tracker: Tracker, store_uris: tuple[str, str | None], umlaut: Umlaut, model_name: str
    ) -> None:
        self.require(tracker, Capability.MULTI_PROCESS)
        tracking, artifacts = store_uris
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _TRACK_IN_PROCESS,
                    json.dumps([tracking, artifacts, model_name, start, 5]),
                ],
                stderr=subprocess.PIPE,
                text=True,
            )
            for start in (0, 100, 200)
        ]
        errors = [p.communicate(timeout=300)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        versions = umlaut.list_versions(model_name)
        assert [v.version for v in versions] == list(range(1, 16))
        assert len({v.digest for v in versions}) == 15
        assert len(umlaut.history(model_name, limit=100)) == 15
