"""Message ids: sortable by time, unique per node, made without a database round trip."""

from __future__ import annotations

import threading
import time

# Message ids: milliseconds since 2025-01-01 << 13 | node (3 bits) << 10 | counter
# (10 bits). They sort by time, are unique per node without a database round
# trip, and stay below 2**53 for decades, so JavaScript clients read them exactly.
_ID_EPOCH_MS = 1_735_689_600_000


class IdGenerator:
    def __init__(self, node_id: int) -> None:
        self._node = node_id << 10
        self._last_ms = 0
        self._counter = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            ms = int(time.time() * 1000) - _ID_EPOCH_MS
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter >= 1024:  # more than 1024 in one ms: borrow the next ms
                    ms += 1
                    self._counter = 0
            else:
                self._counter = 0
            self._last_ms = ms
            return (ms << 13) | self._node | self._counter


def id_floor(ts: float) -> int:
    """The smallest id a message created at epoch second `ts` can have."""
    return max(0, int(ts * 1000) - _ID_EPOCH_MS) << 13


def id_time(id: int) -> float:
    """Epoch seconds (to the millisecond) when message `id` was made."""
    return ((id >> 13) + _ID_EPOCH_MS) / 1000
