"""The Parquet files of the MLflow dataset store, kept in MLflow itself.

One ``dataset_data`` run per distinct file (by sha256) holds it as the artifact
``<sha256>.parquet``, in the dataset experiment; a version records that artifact's
URI, so the same bytes under two names are stored once. The run is FINISHED once
the upload completed, and only those are reused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from umlaut_core.exceptions import ArtifactError, ConfigurationError

from ._dataset_codec import DATA, D, data_tags

if TYPE_CHECKING:
    from ._datasets import MlflowDatasetStore

__all__ = ["DataFiles"]

_SHA = frozenset("0123456789abcdef")


class DataFiles:
    """``put_data`` and ``get_data`` of one :class:`MlflowDatasetStore`."""

    def __init__(self, store: MlflowDatasetStore) -> None:
        self._s = store
        self._t = store._t

    def put(self, sha256: str, data: BinaryIO) -> str:
        """Keep a Parquet file once per sha256, as the artifact of a ``dataset_data``
        run. Two writers putting the same new bytes at the same moment may each
        upload them; both copies are complete and later puts reuse the oldest."""
        if len(sha256) != 64 or not set(sha256) <= _SHA:
            raise ConfigurationError(f"expected a sha256 in lowercase hex, not {sha256!r:.80}")
        with self._t._errors(f"storing the dataset file {sha256[:12]}…"):
            found = self._data_uri(sha256)
            if found is not None:
                return found
            exp_id = self._s._experiment(create=True)
            assert exp_id is not None
            folder = self._s._scratch()
            try:
                local = folder / f"{sha256}.parquet"
                _materialise(data, local)
                tags = data_tags(sha256, local.stat().st_size)
                run = self._t._client.create_run(
                    exp_id, start_time=int(time.time() * 1000), tags=tags,
                    run_name=f"data {sha256[:12]}",
                )  # fmt: skip
                run_id = str(run.info.run_id)
                try:
                    self._t._client.log_artifact(run_id, str(local))
                    # FINISHED marks a complete upload: only those are reused.
                    self._t._finish(run_id, "FINISHED", None)
                except BaseException:
                    # Best effort (the store is probably what failed); an unfinished
                    # data run is never reused anyway.
                    with contextlib.suppress(Exception):
                        self._t._client.delete_run(run_id)
                    raise
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        return f"{run.info.artifact_uri.rstrip('/')}/{sha256}.parquet"

    def _data_uri(self, sha256: str) -> str | None:
        parts: list[str | None] = [
            f"tags.`{D.KIND}` = '{DATA}'",
            f"tags.`{D.SHA256}` = '{sha256}'",
            "attributes.status = 'FINISHED'",
        ]
        runs = sorted(self._s._runs(parts), key=lambda r: (r.info.start_time or 0, r.info.run_id))
        if not runs:
            return None
        return f"{runs[0].info.artifact_uri.rstrip('/')}/{sha256}.parquet"

    def get(self, uri: str) -> bytes:
        dest = self._s._scratch()
        missing = ArtifactError(f"no dataset file at {uri} ({self._s.uri})")
        try:
            with self._t._errors(f"reading the dataset file {uri}", not_found=lambda: missing):
                try:
                    local = self._t._mlflow.artifacts.download_artifacts(
                        artifact_uri=uri,
                        dst_path=str(dest),
                        tracking_uri=self._t._target.tracking_uri,
                    )
                except FileNotFoundError as exc:  # a local artifact root
                    raise missing from exc
                except Exception as exc:
                    if self._absent(uri):
                        raise missing from exc
                    raise
            return Path(local).read_bytes()
        except OSError as exc:
            raise ArtifactError(f"the dataset file at {uri} is unreadable: {exc}") from exc
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def _absent(self, uri: str) -> bool:
        """Whether a download failed because the file is not there: MLflow's
        artifact proxy reports a 404 as a generic error, so the folder is listed."""
        folder, _, file = uri.rpartition("/")
        try:
            listed = self._t._mlflow.artifacts.list_artifacts(
                artifact_uri=folder, tracking_uri=self._t._target.tracking_uri
            )
        except Exception:  # the folder is gone too, or the server is: the caller decides
            return False
        return file not in {f.path.rpartition("/")[2] for f in listed}


def _materialise(data: BinaryIO, dest: Path) -> None:
    """Put the bytes at ``dest`` (MLflow uploads files by path, named as they are):
    a hard link when ``data`` is a whole file on disk, so a large dataset is not
    copied once more, else a streamed copy."""
    name = getattr(data, "name", None)
    try:
        whole_file = isinstance(name, str) and os.path.isfile(name) and data.tell() == 0
    except (OSError, ValueError):
        whole_file = False
    if whole_file:
        assert isinstance(name, str)
        try:
            os.link(name, dest)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    with dest.open("wb") as out:
        shutil.copyfileobj(data, out, 1 << 20)
