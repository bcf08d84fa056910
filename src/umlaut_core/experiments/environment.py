"""What a training run records about where it ran: user, host, process, source file,
git commit and dirty flag, Python and key package versions.

Collected once per process (git and package metadata cost milliseconds) except the
source file, which is the running script's.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..clock import current_user

__all__ = ["process_alive", "process_started", "run_environment"]

#: Packages whose versions explain a training result; recorded when installed.
KEY_PACKAGES = (
    "umlaut-core",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "torch",
    "tensorflow",
    "xgboost",
    "lightgbm",
    "mlflow",
)


def _source_file() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return str(Path(path).resolve()) if path else None


@functools.lru_cache(maxsize=8)
def _git(folder: str) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status)}


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in KEY_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def process_started(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), so a
    reused pid is not taken for the process that started a run; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, started: int | None) -> bool:
    """Whether the process that started a run on this host is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if started is None:
        return True
    now = process_started(pid)
    return now is None or now == started


_cached: tuple[int, dict[str, Any]] | None = None


def run_environment() -> dict[str, Any]:
    """The ``environment`` a new training run records (computed once per process:
    a decorated step in a loop must not stat files and read /proc per call)."""
    global _cached
    pid = os.getpid()
    if _cached is None or _cached[0] != pid:
        source = _source_file()
        env: dict[str, Any] = {
            "user": current_user(),
            "host": socket.gethostname(),
            "pid": pid,
            "process_started": process_started(pid),
            "source": source,
            "python": platform.python_version(),
            "packages": _packages(),
        }
        env.update(_git(str(Path(source).parent) if source else os.getcwd()))
        _cached = (pid, env)
    return dict(_cached[1])
