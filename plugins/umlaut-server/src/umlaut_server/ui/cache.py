"""A small time-bounded cache for results that are costly to compute and fine to show
a little late (drift reports): thread-safe, at most ``size`` entries, each kept for
``ttl`` seconds."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["TtlCache"]

T = TypeVar("T")


class TtlCache(Generic[T]):
    def __init__(self, ttl: float, size: int = 32) -> None:
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The value kept for ``key``, else ``make()`` (outside the lock: two threads
        asking at once may both compute; the later one is kept)."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                self._items.move_to_end(key)
                return hit[1]
        value = make()
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value
