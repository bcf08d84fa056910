"""Local-folder artifact store: ``file:///abs/path``, ``file:rel/path`` or a plain path.

Objects are written to a temporary file in the target folder, flushed, fsynced and
renamed into place, so a reader (or a crash) never sees half a bundle. Keys come
from the core (digests), and every path is checked to stay inside the root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from ..exceptions import ArtifactError, ConfigurationError
from ..hookspecs import hookimpl
from ..keys import check_key
from ..registry import BackendRegistry

__all__ = ["FolderArtifactStore", "path_from_uri"]

_CHUNK = 1 << 20


def path_from_uri(uri: str) -> Path:
    """A filesystem path from ``file:///abs``, ``file:rel`` or a plain path."""
    if uri.startswith("file:"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"file URI {uri!r} names a remote host; use a local path")
        raw = unquote(parts.path)
    else:
        raw = uri
    if "\x00" in raw:
        raise ConfigurationError("a file path must not contain NUL bytes")
    return Path(raw).expanduser()


class FolderArtifactStore:
    """Bundles as files under one root folder."""

    def __init__(self, uri: str, **_options: Any) -> None:
        self.root = path_from_uri(uri).resolve()
        self.uri = self.root.as_uri()

    def _path(self, key_or_uri: str) -> Path:
        if key_or_uri.startswith("file:"):
            path = path_from_uri(key_or_uri).resolve()
        else:
            path = (self.root / check_key(key_or_uri)).resolve()
        if not path.is_relative_to(self.root):
            raise ArtifactError(
                f"{key_or_uri!r} points outside the artifact folder {self.root}; refused"
            )
        return path

    def put(self, key: str, data: bytes | BinaryIO) -> str:
        target = self._path(key)
        if target.exists():
            return target.as_uri()  # content-addressed: same key, same bytes
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    if isinstance(data, (bytes, bytearray, memoryview)):
                        fh.write(data)
                    else:
                        shutil.copyfileobj(data, fh, _CHUNK)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise ArtifactError(f"cannot write {target}: {exc.strerror or exc}") from exc
        return target.as_uri()

    def get(self, uri: str) -> bytes:
        path = self._path(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(
                f"artifact {path} is missing from {self.root}: was the folder moved or "
                f"cleaned? Point artifact_uri at the folder that holds it."
            ) from None
        except OSError as exc:
            raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def delete(self, uri: str) -> None:
        self._path(uri).unlink(missing_ok=True)


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    registry.add_artifact_store("file", FolderArtifactStore)
