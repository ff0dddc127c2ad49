"""What every sans-I/O carrier session shares: its window, its outbox and closing.

The protocols differ in frames and states; they agree that a closed session hands
back the tokens it still held, in the order sent, and that every frame produced
since the last write goes out in one buffer (one `transport.write` per loop turn).
"""

from __future__ import annotations

from typing import Any, ClassVar

from omnigate.carriers.window import Window


class SessionBase:
    """Base of the SMPP, CIMD2 and UCP sessions; they set `CLOSED` to their closed state."""

    CLOSED: ClassVar[Any]
    state: Any
    _win: Window
    _out: list[bytes]
    _buf: bytes

    def close(self) -> list[Any]:
        """The connection is gone (or is being dropped): closed, and the tokens of every
        request still outstanding, in the order sent, for the owner to settle."""
        if self.state is not self.CLOSED:
            self._set_state(self.CLOSED)  # type: ignore[attr-defined]  # each protocol's own
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
