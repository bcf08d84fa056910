"""Several processes share one database; bundles from a script run elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from umlaut_sql import SqlTracker

pytestmark = pytest.mark.slow

# Each worker waits for a start file so the writers really overlap.
_WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from umlaut_core import Umlaut
    from umlaut_core.testing.models import Threshold
    tracking, artifacts, name, start, count, go = json.loads(sys.argv[1])
    with Umlaut(tracking, artifacts) as u:
        while not os.path.exists(go):
            time.sleep(0.005)
        made = [u.track_model(Threshold(i), name) for i in range(start, start + count)]
        same = u.track_model(Threshold(-1), name)  # every worker tracks this one too
    print(json.dumps([[v.version, v.created] for v in made] + [[same.version, same.created]]))
    """
)


def _race(url: str, artifacts: Path, name: str, go: Path, workers: int, count: int) -> list[str]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                json.dumps([url, str(artifacts), name, w * 1000, count, str(go)]),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * workers, [err for _, err in outs]
    return [out for out, _ in outs]


class TestConcurrentProcesses:
    """Processes tracking one name at once get distinct consecutive versions."""

    def test_versions_are_gap_free_and_deduplicated(self, any_url: str, tmp_path: Path) -> None:
        SqlTracker(any_url).close()  # create the schema before the race
        outs = _race(any_url, tmp_path / "artifacts", "Raced", tmp_path / "go", 3, 6)
        results = [json.loads(o) for o in outs]
        mine = sorted(v for r in results for v, created in r[:-1] if created)
        shared = [r[-1] for r in results]
        tracker = SqlTracker(any_url)
        try:
            numbers = [v.version for v in tracker.list_versions("Raced")]
        finally:
            tracker.close()
        assert numbers == list(range(1, 3 * 6 + 2))
        # The model every worker tracked exists once; exactly one worker created it.
        assert len({v for v, _ in shared}) == 1
        assert sum(created for _, created in shared) == 1
        assert sorted([*mine, shared[0][0]]) == numbers


_SCRIPT = textwrap.dedent(
    """
    import sys
    from umlaut_core import Umlaut

    class Discount:
        rate = 0.25

        def run(self, inputs):
            return {"price": inputs["price"] * (1 - self.rate)}

    if __name__ == "__main__":
        with Umlaut(sys.argv[1], sys.argv[2]) as u:
            print(u.track_model(Discount(), "Discount").version)
    """
)
_RUNNER = textwrap.dedent(
    """
    import json, sys
    from umlaut_core import Umlaut
    with Umlaut(sys.argv[1], sys.argv[2]) as u:
        print(json.dumps(u.run_model("Discount", {"price": 100.0})))
        print(len(u.history("Discount")))
    """
)


class TestMainModuleModel:
    """A class defined in a script's __main__ runs in a process that lacks the script."""

    def test_runs_from_another_directory(self, any_url: str, tmp_path: Path) -> None:
        home, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
        home.mkdir()
        elsewhere.mkdir()
        (home / "train.py").write_text(_SCRIPT)
        artifacts = str(tmp_path / "artifacts")
        tracked = subprocess.run(
            [sys.executable, "train.py", any_url, artifacts],
            cwd=home, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert tracked.returncode == 0, tracked.stderr
        (home / "train.py").unlink()  # gone for good, not just absent from sys.path
        ran = subprocess.run(
            [sys.executable, "-c", _RUNNER, any_url, artifacts],
            cwd=elsewhere, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        output, count = ran.stdout.splitlines()
        assert json.loads(output) == {"price": 75.0}
        assert count == "1"
