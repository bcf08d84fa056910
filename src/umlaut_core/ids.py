"""Sortable unique ids for audit records: 48-bit ms time + 80 random bits, 26 chars.

Ids made in one process are strictly increasing, so ordering by id is ordering by
start time; they double as idempotency keys when a record is delivered twice.
"""

from __future__ import annotations

import base64
import os
import threading
import time

__all__ = ["new_run_id"]

# base64's RFC 4648 alphabet is not in ASCII order; Crockford's is, so translating
# keeps byte order = string order (ids sort by time).
_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def new_run_id() -> str:
    """A 26-character, lexicographically time-ordered unique id."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _last_rand += 1
        else:
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        _last_ms = ms
        raw = ((ms << 80) | _last_rand).to_bytes(16, "big")
    return base64.b32encode(raw)[:26].translate(_TO_CROCKFORD).decode()


def _reset_after_fork() -> None:
    # A forked child must not continue its parent's sequence: same ms + same counter
    # would repeat the parent's next id.
    global _last_ms
    _last_ms = -1


os.register_at_fork(after_in_child=_reset_after_fork)
