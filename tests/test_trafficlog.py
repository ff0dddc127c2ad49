"""The traffic log line, in the product sheet's format."""

from __future__ import annotations

import time
from pathlib import Path

from omnigate.trafficlog import TrafficLog, format_line


def test_line_matches_the_product_sheet_example() -> None:
    ts = time.mktime((2010, 2, 5, 9, 24, 21, 0, 0, -1)) + 0.141
    line = format_line(ts, "OUT", "TS0", "karl.ek@advox.se", "+46737452078", 102, 1)
    assert line == "2010-02-05; 09:24:21.141;OUT;TS0;karl.ek@advox.se;46737452078;102;1;\n"


def test_semicolons_in_the_sender_cannot_break_columns() -> None:
    line = format_line(time.time(), "IN", "gsm1", "a;b", "46701234567", 3, 1)
    assert line.count(";") == 8
    assert ";a,b;" in line


async def test_rotates_by_day_and_size_and_keeps_the_newest(tmp_path: Path) -> None:
    now = [time.mktime((2026, 11, 22, 23, 59, 0, 0, 0, -1))]
    path = tmp_path / "traffic.log"
    log = TrafficLog(str(path), max_bytes=200, keep=2, clock=lambda: now[0])

    def line(n: int) -> None:
        log.write("OUT", "smsc1", "anna", "+46701234567", n, 1)
        log.flush()

    line(1)
    now[0] += 120  # past midnight: yesterday's lines move aside
    line(2)
    assert (tmp_path / "traffic.log.2026-11-22").read_text().count("\n") == 1
    assert ";2;1;" in path.read_text()
    for n in range(3, 13):  # ~57 bytes a line: the size limit rotates within the day
        line(n)
    rotated = sorted(p.name for p in tmp_path.glob("traffic.log.*"))
    assert rotated == ["traffic.log.2026-11-23", "traffic.log.2026-11-23.1"]  # keep = 2
    total = "".join(p.read_text() for p in tmp_path.glob("traffic.log*"))
    assert all(f";{n};1;" in total for n in range(2, 13)) and ";1;1;" not in total
    log.close()


async def test_never_rotates_when_told(tmp_path: Path) -> None:
    now = [time.mktime((2026, 11, 22, 23, 59, 0, 0, 0, -1))]
    log = TrafficLog(str(tmp_path / "t.log"), rotate="never", clock=lambda: now[0])
    log.write("IN", "gsm1", "46701234567", "46700000000", 3, 1)
    log.flush()
    now[0] += 86400
    log.write("IN", "gsm1", "46701234567", "46700000000", 4, 1)
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["t.log"]
