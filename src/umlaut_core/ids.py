"""Sortable unique ids for audit records (ULID layout: 48-bit ms time + 80 bits).

Ids made in one process are strictly increasing, so ordering by id is ordering by
start time; they double as idempotency keys when a record is delivered twice.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_run_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


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
        return _b32(ms, 10) + _b32(_last_rand, 16)


def _reset_after_fork() -> None:
    # A forked child must not continue its parent's sequence: same ms + same counter
    # would repeat the parent's next id.
    global _last_ms
    _last_ms = -1


os.register_at_fork(after_in_child=_reset_after_fork)
