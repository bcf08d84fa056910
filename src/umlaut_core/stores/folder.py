"""Local-folder artifact store: ``file:///abs/path``, ``file:rel/path`` or a plain path.

Objects are written to a temporary file in the target folder, flushed, fsynced and
renamed into place, so a reader (or a crash) never sees half a bundle. Keys come
from the core (digests), and every path is checked to stay inside the root.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from ..exceptions import ArtifactError, ConfigurationError
from ..hookspecs import hookimpl
from ..keys import check_key, check_prefix
from ..protocols import Capability
from ..records import StoredObject
from ..registry import BackendRegistry

__all__ = ["FolderArtifactStore", "path_from_uri", "refuse_options"]

_CHUNK = 1 << 20


def refuse_options(options: dict[str, Any], kind: str, what: str) -> None:
    """A store that takes no options refuses any (a typo must not pass silently)."""
    if options:
        raise ConfigurationError(
            f"unknown {kind} option(s) {sorted(options)} for {what}; known: none (it takes "
            f"no options): remove them from {kind}_options"
        )


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

    capabilities = frozenset({Capability.LIST_OBJECTS})

    def __init__(self, uri: str, **options: Any) -> None:
        refuse_options(options, "artifact", f"the folder store {uri!r}")
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

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Files under the root whose key starts with ``prefix``; the temporary files
        of writes in progress (``.tmp-….part``) are not objects and are left out."""
        check_prefix(prefix)
        head, _, _ = prefix.rpartition("/")
        start = self.root / head if head else self.root
        for folder, dirs, files in os.walk(start):
            dirs.sort()
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(folder, name)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    info = path.stat()
                except FileNotFoundError:  # deleted while listing
                    continue
                modified = dt.datetime.fromtimestamp(info.st_mtime, dt.UTC)
                yield StoredObject(key, path.as_uri(), info.st_size, modified)


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    registry.add_artifact_store("file", FolderArtifactStore)
