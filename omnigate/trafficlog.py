"""The traffic log users know from the product sheet: one semicolon line per SMS.

    2010-02-05; 09:24:21.141;OUT;TS0;karl.ek@advox.se;46737452078;102;1;

date; time; direction (OUT/IN); link; sender (account, e-mail or number);
recipient; characters; parts. An OUT line is written when the carrier has
taken every part of a message, an IN line when an MO arrives. Lines are
buffered and flushed about once a second, so the log costs no syscall per
message; a crash may lose the last second of lines, never a message.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TextIO

_FLUSH_EVERY = 1.0


_stamp_second = -1
_stamp = ""


def _second(second: int) -> str:
    """'2010-02-05; 09:24:21' in local time, formatted once per second, not per line."""
    global _stamp_second, _stamp
    if second != _stamp_second:
        _stamp = time.strftime("%Y-%m-%d; %H:%M:%S", time.localtime(second))
        _stamp_second = second
    return _stamp


def format_line(ts: float, direction: str, link: str, sender: str, recipient: str,
                chars: int, parts: int) -> str:
    second = int(ts)
    return (f"{_second(second)}.{int((ts - second) * 1000):03d};{direction};{link};"
            f"{sender.replace(';', ',')};{recipient.lstrip('+')};{chars};{parts};\n")


class TrafficLog:
    def __init__(self, path: str | None) -> None:
        self._file: TextIO | None = None
        self._lines: list[str] = []
        self._handle: asyncio.TimerHandle | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, direction: str, link: str, sender: str, recipient: str,
              chars: int, parts: int) -> None:
        if self._file is None:
            return
        self._lines.append(format_line(time.time(), direction, link, sender, recipient,
                                       chars, parts))
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(_FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        self._handle = None
        if self._file and self._lines:
            self._file.write("".join(self._lines))
            self._file.flush()
            self._lines.clear()

    def close(self) -> None:
        if self._handle:
            self._handle.cancel()
        self.flush()
        if self._file:
            self._file.close()
            self._file = None
