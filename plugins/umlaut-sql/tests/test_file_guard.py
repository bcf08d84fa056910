"""A SQLite file deleted or replaced under a running process is noticed, not written
into an unlinked inode where every later record would vanish without an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from umlaut_core import Umlaut
from umlaut_core.exceptions import BackendError
from umlaut_core.testing.models import Threshold


def _open(home: Path) -> Umlaut:
    return Umlaut(f"sqlite:///{home / 'umlaut.db'}", str(home / "artifacts"), delivery="sync")


class TestDeletedStore:
    """Calls after the store folder is deleted fail loudly, before or at the write."""

    def test_a_deleted_folder_fails_every_later_call(self, tmp_path: Path) -> None:
        home = tmp_path / ".umlaut"
        u = _open(home)
        u.track_model(Threshold(1), "m", stage="Production")
        assert u.run_model("m", {"x": 2}, stage="Production")["above"] is True
        u.run_model("m", {"x": 2}, version=1)  # the facade now keeps version 1 pinned
        shutil.rmtree(home)
        with pytest.raises(BackendError, match="was deleted while this process had it open"):
            u.run_model("m", {"x": 2}, stage="Production")  # fails at the stage lookup
        with pytest.raises(BackendError, match="was deleted"):
            u.run_model("m", {"x": 2}, version=1)  # asks nothing before: fails at the write
        with pytest.raises(BackendError, match="was deleted"):
            u.history("m")
        with pytest.raises(BackendError, match="was deleted"):
            u.track_model(Threshold(2), "m")
        u.close()
        # A new facade starts a new, empty store there, as the message says.
        fresh = _open(home)
        assert fresh.list_models() == []
        fresh.close()

    def test_a_replaced_file_is_noticed(self, tmp_path: Path) -> None:
        home = tmp_path / ".umlaut"
        u = _open(home)
        u.track_model(Threshold(1), "m")
        other = _open(tmp_path / "other")
        other.close()
        db = home / "umlaut.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        (tmp_path / "other" / "umlaut.db").replace(db)
        with pytest.raises(BackendError, match="was replaced by another file"):
            u.run_model("m", {"x": 2})
        u.close()
