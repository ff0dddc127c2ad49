"""The traffic log users know from the product sheet: one semicolon line per SMS.

    2010-02-05; 09:24:21.141;OUT;TS0;karl.ek@advox.se;46737452078;102;1;

date; time; direction (OUT/IN); link; sender (account, e-mail or number);
recipient; characters; parts. An OUT line is written when the carrier has
taken every part of a message, an IN line when an MO arrives. Lines are
buffered and flushed about once a second, so the log costs no syscall per
message; a crash may lose the last second of lines, never a message.

The log rotates by day (the day's lines move to `PATH.YYYY-MM-DD`) and
optionally by size (`PATH.YYYY-MM-DD.1`, `.2`, ...), checked at each flush,
and the oldest rotated files beyond `keep` are deleted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

_FLUSH_EVERY = 1.0

log = logging.getLogger("omnigate.trafficlog")


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


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


class TrafficLog:
    def __init__(self, path: str | None, *, rotate: str = "daily", max_bytes: int = 0,
                 keep: int = 90, clock: Callable[[], float] = time.time) -> None:
        self._path = Path(path) if path else None
        self._rotate_daily = rotate == "daily"
        self._max_bytes = max_bytes
        self._keep = keep
        self._clock = clock
        self._file: TextIO | None = None
        self._lines: list[str] = []
        self._handle: asyncio.TimerHandle | None = None
        self._day = ""
        if self._path:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        assert self._path is not None
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        # an existing log belongs to the day it was last written
        self._day = _day(self._path.stat().st_mtime if self._file.tell() else self._clock())

    def write(self, direction: str, link: str, sender: str, recipient: str,
              chars: int, parts: int) -> None:
        if self._file is None:
            return
        self._lines.append(format_line(self._clock(), direction, link, sender, recipient,
                                       chars, parts))
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(_FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        self._handle = None
        if self._file and self._lines:
            self._rotate_if_due()
            self._file.write("".join(self._lines))
            self._file.flush()
            self._lines.clear()

    def _rotate_if_due(self) -> None:
        assert self._file is not None and self._path is not None
        new_day = self._rotate_daily and _day(self._clock()) != self._day
        too_big = self._max_bytes and self._file.tell() >= self._max_bytes
        if not (new_day or too_big) or not self._file.tell():
            if new_day:
                self._day = _day(self._clock())
            return
        target = self._path.with_name(f"{self._path.name}.{self._day}")
        n = 0
        while target.exists():
            n += 1
            target = self._path.with_name(f"{self._path.name}.{self._day}.{n}")
        self._file.close()
        try:
            os.replace(self._path, target)
        except OSError as exc:
            log.error("traffic log: cannot rotate %s to %s (%s); writing on", self._path,
                      target, exc.strerror)
        self._open()
        self._day = _day(self._clock())
        self._prune()

    def _prune(self) -> None:
        assert self._path is not None
        def age(p: Path) -> tuple[str, int]:  # PATH.2026-11-22.3 -> ("2026-11-22", 3)
            day, _, n = p.name[len(self._path.name) + 1:].partition(".")  # type: ignore[union-attr]
            return day, int(n) if n.isdigit() else 0

        rotated = sorted(self._path.parent.glob(f"{self._path.name}.*"), key=age)
        for old in rotated[:-self._keep]:
            try:
                old.unlink()
            except OSError as exc:
                log.warning("traffic log: cannot delete %s (%s)", old, exc.strerror)

    def close(self) -> None:
        if self._handle:
            self._handle.cancel()
        self.flush()
        if self._file:
            self._file.close()
            self._file = None
