"""What every sans-I/O carrier session shares: its window, its outbox and closing.

The protocols differ in frames and states; they agree that a closed session hands
back the tokens it still held, in the order sent, and that every frame produced
since the last write goes out in one buffer (one `transport.write` per loop turn).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from omnigate.carriers.window import Window


class SessionError(Exception):
    """The owner asked for something the session's state does not allow (a bug)."""


class SessionBase:
    """Base of the SMPP, CIMD2 and UCP sessions.

    A protocol names itself (`PROTOCOL`), its legal state changes (`TRANSITIONS`) and
    its closed state (`CLOSED`), and calls `_open(initial, window)` in its constructor.
    """

    PROTOCOL: ClassVar[str]
    TRANSITIONS: ClassVar[Mapping[Any, frozenset[Any]]]
    CLOSED: ClassVar[Any]
    state: Any
    _win: Window
    _out: list[bytes]
    _buf: bytes

    def _open(self, initial: Any, window: Window) -> None:
        self.state = initial
        self._win = window
        self._buf = b""
        self._out = []

    def _set_state(self, new: Any) -> None:
        """Move to `new`; an illegal transition is a bug and raises (asyncpg's _set_state)."""
        if new not in self.TRANSITIONS[self.state]:
            raise SessionError(f"illegal {self.PROTOCOL} session transition "
                               f"{self.state.value} -> {new.value}")
        self.state = new

    @property
    def in_window(self) -> int:
        """Submissions sent and not yet answered."""
        return self._win.submits

    def close(self) -> list[Any]:
        """The connection is gone (or is being dropped): closed, and the tokens of every
        request still outstanding, in the order sent, for the owner to settle."""
        if self.state is not self.CLOSED:
            self._set_state(self.CLOSED)
        tokens = self._win.close()
        self._out.clear()
        self._buf = b""
        return tokens

    def data_to_send(self) -> bytes:
        """Bytes to write: every frame produced since the last call, in one buffer."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data
