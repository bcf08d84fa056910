"""SQL tracker + S3 artifacts over real HTTP (moto server), across processes and profiles."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from umlaut_s3 import S3ArtifactStore

from umlaut_core import Umlaut
from umlaut_core.exceptions import BackendError, ModelNotFoundError
from umlaut_core.testing import TrackerSuite

pytestmark = pytest.mark.slow

TRACK = """
import sys
from umlaut_core import Umlaut

class Scaler:  # defined in __main__: must be pickled by value to run elsewhere
    def __init__(self, k):
        self.k = k

    def run(self, x):
        return {"y": x["v"] * self.k}

ml = Umlaut(sys.argv[1], sys.argv[2])
mv = ml.track_model(Scaler(3), "Scaler", stage="Production")
print(mv.digest, mv.artifact_uri)
"""

RUN = """
import json, sys
from umlaut_core import Umlaut

ml = Umlaut(sys.argv[1], sys.argv[2])
print(json.dumps(ml.run_model("Scaler", {"v": 2}, stage="Production", reference_id="e2e")))
"""


def _python(script: str, *args: str, env: dict[str, str], cwd: Path) -> str:
    path = cwd / f"script_{abs(hash(script))}.py"
    path.write_text(textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _bundle_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


class TestSqliteAndS3Suite(TrackerSuite):
    """The whole tracker suite: SQLite metadata, bundles on the moto server over HTTP."""

    @pytest.fixture
    def tracker(self, tmp_path: Path) -> Iterator[Any]:
        from umlaut_sql import SqlTracker

        tracker = SqlTracker(f"sqlite:///{tmp_path / 'suite.db'}")
        yield tracker
        tracker.close()

    @pytest.fixture
    def artifact_store(self, server_bucket: tuple[str, str, Any]) -> S3ArtifactStore:
        endpoint, bucket, _ = server_bucket
        # The endpoint rides on the URI, so the suite's subprocesses can reopen it.
        return S3ArtifactStore(f"s3://{bucket}/suite?endpoint_url={endpoint}")


class TestTwoProcesses:
    """Track in one process, run in another; bundles sit under their content keys."""

    def test_track_then_run_elsewhere(
        self, server_bucket: tuple[str, str, Any], tmp_path: Path
    ) -> None:
        endpoint, bucket, client = server_bucket
        db = f"sqlite:///{tmp_path / 'team.db'}"
        artifacts = f"s3://{bucket}/e2e"
        # The endpoint comes from boto3's standard variable, not from umlaut options.
        env = {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint}
        _digest, artifact_uri = _python(TRACK, db, artifacts, env=env, cwd=tmp_path).split()
        (key,) = _bundle_keys(client, bucket, "e2e/")
        assert artifact_uri == f"s3://{bucket}/{key}"
        # Keyed by the sha256 of the bundle file itself.
        sha256 = hashlib.sha256(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert key == f"e2e/bundles/{sha256.hexdigest()[:2]}/{sha256.hexdigest()}.zip"
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"]["sha256"] == sha256.hexdigest()

        out = _python(RUN, db, artifacts, env=env, cwd=tmp_path)
        assert json.loads(out) == {"y": 6}
        # Tracking the same model again from a third process uploads nothing new.
        _python(TRACK, db, artifacts, env=env, cwd=tmp_path)
        assert _bundle_keys(client, bucket, "e2e/") == [key]

        with Umlaut(db, f"{artifacts}?endpoint_url={endpoint}") as ml:
            (record,) = ml.history("Scaler")
            assert (record.status, record.reference_id, record.version) == ("ok", "e2e", 1)
            assert [v.version for v in ml.list_versions("Scaler")] == [1]


class TestProfile:
    """SQLite + S3 chosen by a named profile in pyproject.toml."""

    def test_team_profile(
        self,
        server_bucket: tuple[str, str, Any],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        endpoint, bucket, client = server_bucket
        monkeypatch.setenv("TEAM_S3_ENDPOINT", endpoint)
        (tmp_path / "pyproject.toml").write_text(
            textwrap.dedent(
                f"""
                [tool.umlaut.profiles.team]
                tracking_uri = "sqlite:///{tmp_path / "team.db"}"
                artifact_uri = "s3://{bucket}/team"

                [tool.umlaut.profiles.team.artifact_options]
                endpoint_url = "${{TEAM_S3_ENDPOINT}}"
                connect_timeout = 2
                multipart_threshold = "16MiB"
                """
            )
        )
        monkeypatch.chdir(tmp_path)
        with Umlaut(profile="team") as ml:
            store = ml.artifact_store
            assert isinstance(store, S3ArtifactStore)
            assert store._opts.multipart_threshold == 16 * 1024 * 1024
            mv = ml.track_model(lambda x: x["a"] + 1, "Profiled")
            assert ml.run_model("Profiled", {"a": 1}) == 2
        assert _bundle_keys(client, bucket, "team/") == [
            mv.artifact_uri.removeprefix(f"s3://{bucket}/")
        ]
        assert mv.artifact_uri.startswith(f"s3://{bucket}/team/bundles/")


class TestFailedUpload:
    """An upload that fails leaves no version behind in the SQL tracker."""

    def test_no_version_points_at_a_missing_object(
        self, moto_server: str, aws_env: dict[str, str], tmp_path: Path
    ) -> None:
        db = f"sqlite:///{tmp_path / 'failed.db'}"
        with Umlaut(db, f"s3://no-such-bucket/m?endpoint_url={moto_server}") as ml:
            with pytest.raises(BackendError, match="no-such-bucket"):
                ml.track_model(lambda x: x, "Orphan")
            with pytest.raises(ModelNotFoundError):
                ml.list_versions("Orphan")
            assert ml.list_models() == []


@pytest.mark.postgres
class TestPostgresAndS3:
    """PostgreSQL metadata + S3 bundles on the moto server, across two processes."""

    def test_track_then_run_elsewhere(
        self,
        postgres_database: Any,
        server_bucket: tuple[str, str, Any],
        tmp_path: Path,
    ) -> None:
        endpoint, bucket, client = server_bucket
        db = str(postgres_database)
        artifacts = f"s3://{bucket}/pg?endpoint_url={endpoint}"
        env = dict(os.environ)
        _digest, artifact_uri = _python(TRACK, db, artifacts, env=env, cwd=tmp_path).split()
        (key,) = _bundle_keys(client, bucket, "pg/")
        sha256 = hashlib.sha256(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert key == f"pg/bundles/{sha256.hexdigest()[:2]}/{sha256.hexdigest()}.zip"
        assert artifact_uri == f"s3://{bucket}/{key}"
        assert json.loads(_python(RUN, db, artifacts, env=env, cwd=tmp_path)) == {"y": 6}
        with Umlaut(db, artifacts) as ml:
            assert [r.status for r in ml.history("Scaler")] == ["ok"]
            assert ml.get_version("Scaler").artifact_uri == artifact_uri


class TestReadme:
    """The README's quick-start runs as written (bucket and endpoint from the environment)."""

    def test_quick_start(self, server_bucket: tuple[str, str, Any], tmp_path: Path) -> None:
        endpoint, _, client = server_bucket
        client.create_bucket(Bucket="my-bucket")
        readme = (Path(__file__).parents[1] / "README.md").read_text()
        snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
        env = {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint}
        _python(snippet + "\nprint(ml.history()[0].output_json)\n", env=env, cwd=tmp_path)
        assert _bundle_keys(client, "my-bucket", "models/bundles/")


class TestTrainingArtifactsAndDatasets:
    """Training-run artifacts and dataset files go to the configured S3 store."""

    def test_run_artifacts_and_dataset_bytes_live_in_the_bucket(
        self, server_bucket: tuple[str, str, Any], tmp_path: Path
    ) -> None:
        endpoint, bucket, client = server_bucket
        db = f"sqlite:///{tmp_path / 'runs.db'}"
        artifacts = f"s3://{bucket}/team?endpoint_url={endpoint}"
        with Umlaut(db, artifacts) as ml:
            with ml.start_run("s3") as run:
                art = run.log_artifact(b"weights" * 1000, "model/weights.bin")
            assert art.uri.startswith(f"s3://{bucket}/team/training/")
            assert ml.load_artifact(run.run_id, "model/weights.bin") == b"weights" * 1000
            pd = pytest.importorskip("pandas")
            pytest.importorskip("pyarrow")
            frame = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]})
            ds = ml.track_dataset(frame, "s3 data")
            assert ds.artifact_uri.startswith(f"s3://{bucket}/team/datasets/")
            pd.testing.assert_frame_equal(ds.load(), frame)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert any(k.startswith("team/training/") for k in keys)
        assert any(k.startswith("team/datasets/") for k in keys)
