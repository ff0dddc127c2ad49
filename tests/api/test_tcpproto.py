"""The line protocol's pure parts: framing, telnet bytes, overflow, dot-stuffing, arguments."""

from __future__ import annotations

import pytest

from omnigate.api.tcpproto import (
    LineFramer,
    Overflow,
    multiline,
    parse_numbers,
    parse_since,
    split_command,
    unstuff,
)


def feed_bytewise(framer: LineFramer, data: bytes) -> list[bytes | Overflow]:
    out: list[bytes | Overflow] = []
    for i in range(len(data)):
        out += framer.feed(data[i:i + 1])
    return out


TELNET = (b"\xff\xfb\x01"  # IAC WILL ECHO
          b"HE\xff\xf1LP\r\n"  # IAC NOP inside a word
          b"\xff\xfa\x18\x00xterm\xff\xf0"  # IAC SB TERMINAL-TYPE IS xterm IAC SE
          b"SEND 1 \xff\xff\r\0\n"  # IAC IAC is a data byte 255; telnet's CR NUL
          b"\xff\x0aQUIT\n")  # IAC then a byte that is no command: garbage kept, LF ends a line


@pytest.mark.parametrize("split", [False, True])
def test_telnet_commands_are_removed(split: bool) -> None:
    framer = LineFramer(100)
    lines = feed_bytewise(framer, TELNET) if split else framer.feed(TELNET)
    assert lines == [b"HELP", b"SEND 1 \xff", b"", b"QUIT"]


def test_crlf_lf_and_partial_lines() -> None:
    framer = LineFramer(100)
    assert framer.feed(b"A\r\nB\nC") == [b"A", b"B"]
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [b"C"]


def test_overlong_line_is_dropped_and_reported_where_it_ends() -> None:
    framer = LineFramer(10)
    assert framer.feed(b"0123456789\r\n") == [b"0123456789"]  # exactly the limit, CR aside
    out = framer.feed(b"01234567890")
    assert out == []
    for _ in range(100):  # streams on without buffering
        assert framer.feed(b"x" * 1000) == []
    assert len(framer._buf) == 0
    assert framer.feed(b"end\nNEXT\n") == [Overflow(10), b"NEXT"]


def test_endless_subnegotiation_is_abandoned() -> None:
    framer = LineFramer(1000)
    out = framer.feed(b"\xff\xfa" + b"g" * 64 + b"HELP\n")
    assert out == [b"HELP"]


def test_dot_stuffing_round_trip() -> None:
    block = multiline("2 lines", [".hidden", "plain", "."])
    assert block == "+OK 2 lines\r\n..hidden\r\nplain\r\n..\r\n.\r\n"
    body = block.split("\r\n")[1:-2]
    assert [unstuff(x) for x in body] == [".hidden", "plain", "."]


def test_split_command() -> None:
    assert split_command("  send 0701,0702  two  spaces ") == ("SEND", "0701,0702  two  spaces")
    assert split_command("quit") == ("QUIT", "")
    assert split_command(" \t ") == ("", "")


def test_parse_since() -> None:
    assert parse_since("90s", 1000.0) == 910.0
    assert parse_since("2h", 10000.0) == 2800.0
    assert parse_since("1D", 100000.0) == 13600.0
    assert parse_since("2026-11-22T08:00:00+01:00", 0) == 1795330800.0
    with pytest.raises(ValueError, match="needs a time zone"):
        parse_since("2026-11-22T08:00", 0)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", 0)


def test_parse_numbers() -> None:
    assert parse_numbers("0701234567,+46708321321") == ["0701234567", "+46708321321"]
    with pytest.raises(ValueError, match="empty number"):
        parse_numbers("0701,")
