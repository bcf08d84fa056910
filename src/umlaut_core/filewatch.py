"""Noticing that a file this process keeps open was deleted or replaced underneath it.

An open SQLite connection keeps writing to a file's inode after the file was unlinked
(a cleaned ``.umlaut`` folder, a restore from backup): every later write "succeeds"
into a file nobody will ever read again, so audit records vanish without an error.
Comparing the path's device and inode with the ones opened costs one ``stat`` (about
a microsecond), which the SQL tracker and the spool pay once per call.
"""

from __future__ import annotations

import os
from pathlib import Path

from .exceptions import BackendError

__all__ = ["FileGuard"]


class FileGuard:
    """Remembers which file a path named when it was opened; :meth:`check` raises
    ``BackendError`` once the path is gone or names another file."""

    __slots__ = ("_identity", "path", "what")

    def __init__(self, path: str | Path, what: str) -> None:
        # Absolute: a later chdir must not make the check look at another file.
        self.path = os.path.abspath(path)
        self.what = what
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)

    def check(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise BackendError(
                f"the {self.what} {self.path} was deleted while this process had it "
                f"open; nothing more can be stored there (it would be lost). Restore the "
                f"file, or open a new Umlaut to start a new one."
            ) from None
        except OSError as exc:
            raise BackendError(f"cannot check the {self.what} {self.path}: {exc}") from exc
        if (st.st_dev, st.st_ino) != self._identity:
            raise BackendError(
                f"the {self.what} {self.path} was replaced by another file while this "
                f"process had it open; open a new Umlaut to use the new file."
            )
