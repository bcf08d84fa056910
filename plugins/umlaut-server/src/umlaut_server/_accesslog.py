"""The JSON-lines access log: one line per response, never a body or a header value.

Fields, in order: ``ts`` (ISO 8601 UTC), ``request_id``, ``method``, ``path`` (no
query string), ``status``, ``duration_ms``, ``protocol`` (``mlflow``, ``v1``,
``v2``, ``ops``), ``model``, ``version`` (the version that answered, or null),
``bytes_in``, ``bytes_out``, ``client`` (the peer address, the proxy's unless
``--proxy-headers``), ``error_code`` (or null), ``auth`` (``ok``, ``none``, ``off``
under --no-auth, or the refusal: ``missing``, ``unknown``, ``scope``; never the token
nor any part of its hash) and ``worker`` (process id).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
from typing import IO, Any

__all__ = ["AccessLog"]


class AccessLog:
    """Writes lines to stdout (``"-"``), a file (appended), or nowhere (None)."""

    def __init__(self, target: str | None) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._stream: IO[str] | None
        self._owned = False
        if target is None:
            self._stream = None
        elif target == "-":
            self._stream = sys.stdout
        else:
            self._stream = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._owned = True

    @property
    def enabled(self) -> bool:
        """Whether lines go anywhere (callers skip gathering the fields when not)."""
        return self._stream is not None

    def write(self, **fields: Any) -> None:
        if self._stream is None:
            return
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        line = json.dumps({"ts": now, **fields, "worker": self._pid}, ensure_ascii=False)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                if not self._owned:
                    self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed stdout must not fail requests

    def close(self) -> None:
        if self._owned and self._stream is not None:
            self._stream.close()
            self._stream = None
