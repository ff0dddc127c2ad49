"""The traffic log line, in the product sheet's format."""

from __future__ import annotations

import time

from omnigate.trafficlog import format_line


def test_line_matches_the_product_sheet_example() -> None:
    ts = time.mktime((2010, 2, 5, 9, 24, 21, 0, 0, -1)) + 0.141
    line = format_line(ts, "OUT", "TS0", "karl.ek@advox.se", "+46737452078", 102, 1)
    assert line == "2010-02-05; 09:24:21.141;OUT;TS0;karl.ek@advox.se;46737452078;102;1;\n"


def test_semicolons_in_the_sender_cannot_break_columns() -> None:
    line = format_line(time.time(), "IN", "gsm1", "a;b", "46701234567", 3, 1)
    assert line.count(";") == 8
    assert ";a,b;" in line
