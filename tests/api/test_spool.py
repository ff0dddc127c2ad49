"""File spool: files written into outgoing/ -> Gateway -> SMPP -> simulator, answers in
processed/ and failed/; the file format is also tested directly (it is pure)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from omnigate.api.spool import SpoolFileError, client_ref, config_problems, parse_spool_file
from omnigate.config import parse
from omnigate.gateway import Gateway
from omnigate.model import Inbound
from omnigate.sim.smpp import SmscSimulator
from tests.support import make_config

TIMEOUT = 10.0
PRODUCT_SHEET = (b"From: ADVOX:myaddress@mydomain.com\n"
                 b"To: SMS:0705123456@sms\n"
                 b"Subject: This is my first Omnigate sms test\n\n")
SMSTOOLS = b"To: 46701234567\n\nPump 3 pressure low\n"

# -- the format ------------------------------------------------------------------


def test_product_sheet_form() -> None:
    f = parse_spool_file(PRODUCT_SHEET)
    assert f.to == ["0705123456"]
    assert f.account == "myaddress@mydomain.com"
    assert f.text == "This is my first Omnigate sms test"


def test_smstools_form_keeps_line_breaks_and_crlf() -> None:
    f = parse_spool_file(b"To: 46701234567\r\n\r\nline one\r\nline two\r\n\r\n")
    assert f.to == ["46701234567"]
    assert f.text == "line one\nline two"


def test_every_header() -> None:
    f = parse_spool_file(b"To: 0701234567, ops\nTo: SMS:0707654321@sms\nFrom: alarms@example.com\n"
                         b"Sender: Omnigate\nFlash: yes\nValidity: 2h\nPriority: high\n"
                         b"Report: no\nCharset: UTF-8\nSubject: Alarm\n\nbody")
    assert f.to == ["0701234567", "ops", "0707654321"]
    assert (f.account, f.sender, f.flash, f.validity, f.priority, f.report) == (
        "alarms@example.com", "Omnigate", True, 7200.0, 9, False)
    assert f.text == "Alarm\nbody"
    assert f.lines["Sender"] == 4


def test_charsets() -> None:
    latin = "To: 0701234567\n\nGrüße från Göteborg\n".encode("iso-8859-1")
    assert parse_spool_file(latin, fallback="iso-8859-1").text == "Grüße från Göteborg"
    declared = "To: 0701234567\nCharset: cp1252\n\n€ 5\n".encode("cp1252")
    assert parse_spool_file(declared).text == "€ 5"
    assert parse_spool_file("\ufeffTo: 0701234567\n\nå".encode()).text == "å"  # BOM
    with pytest.raises(SpoolFileError, match=r"line 3: bytes not valid utf-8 \(byte 18\)"):
        parse_spool_file(latin, fallback=None)


@pytest.mark.parametrize(("data", "error"), [
    (b"To 0701234567\n\nhi", "line 1: expected a header such as 'To: 46701234567'"),
    (b"To: 0701234567\nColour: red\n\nhi", "line 2: unknown header 'Colour'"),
    (b"From: a@example.com\n\nhi", "no To header"),
    (b"To: 0701234567\n\n\n", "line 3: the text is empty"),
    (b"To: 0701234567\nFlash: maybe\n\nhi", "line 2: Flash: expected yes or no"),
    (b"To: 0701234567\nValidity: soon\n\nhi", "line 2: Validity: expected seconds"),
    (b"To: 0701234567\nPriority: 12\n\nhi", "line 2: Priority: expected 0..9"),
    (b"To: 0701234567\nCharset: klingon\n\nhi", "line 2: Charset: unknown charset 'klingon'"),
    (b"To: 0701234567,\n\nhi", "line 1: To: empty recipient"),
])
def test_malformed_files_name_the_line(data: bytes, error: str) -> None:
    with pytest.raises(SpoolFileError) as exc:
        parse_spool_file(data)
    assert str(exc.value).startswith(error)


def test_client_ref_is_the_same_file_not_the_same_text() -> None:
    assert client_ref("a", 1, b"x") == client_ref("a", 1, b"x")
    assert len({client_ref("a", 1, b"x"), client_ref("b", 1, b"x"),
                client_ref("a", 2, b"x"), client_ref("a", 1, b"y")}) == 4


def test_check_config_names_bad_group_numbers(tmp_path: Path) -> None:
    config = parse({"spool": {"dir": str(tmp_path), "groups": [
        {"name": "ops", "numbers": ["0701234567", "0701"]}]}})
    assert config_problems(config) == [
        "spool.groups[0].numbers[1]: '0701' is not a valid number for region SE (too short)"]


# -- end to end ------------------------------------------------------------------


async def start(gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
                store_url: str, **spool: Any) -> Gateway:
    settings = {"dir": str(tmp_path / "spool"), "settle": 0.2, "rescan": 1.0, **spool}
    config = make_config(store_url, smsc.port, tmp_path, spool=settings)
    gw = await gateway_factory(config)
    assert gw.spool is not None
    return gw


async def wait_file(path: Path, timeout: float = TIMEOUT) -> str:
    async with asyncio.timeout(timeout):
        while not path.exists():
            await asyncio.sleep(0.02)
    return path.read_text()


def drop(gw: Gateway, name: str, data: bytes) -> Path:
    """Write then rename, as the README says."""
    assert gw.spool is not None
    tmp = gw.spool.outgoing / f".{name}.tmp"
    tmp.write_bytes(data)
    os.rename(tmp, gw.spool.outgoing / name)
    return gw.spool.outgoing / name


def ok_lines(text: str) -> list[tuple[int, str, int]]:
    out = []
    for line in text.splitlines():
        word, id, number, parts = line.split()
        assert word == "OK"
        out.append((int(id), number, int(parts)))
    return out


async def test_both_formats_are_sent_and_answered(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        store_url: str) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, store_url)
    assert gw.spool is not None
    assert all((gw.spool.root / d).is_dir()
               for d in ("outgoing", "processed", "failed", "incoming"))
    drop(gw, "sheet.txt", PRODUCT_SHEET)
    drop(gw, "tools", SMSTOOLS)
    sheet = ok_lines(await wait_file(gw.spool.processed / "sheet.txt.ok"))
    tools = ok_lines(await wait_file(gw.spool.processed / "tools.ok"))
    assert [(n, p) for _, n, p in sheet] == [("+46705123456", 1)]
    assert [(n, p) for _, n, p in tools] == [("+46701234567", 1)]
    await smsc.wait_for(2)
    got = {s.destination: s.text for s in smsc.submits}
    assert got == {"46705123456": "This is my first Omnigate sms test",
                   "46701234567": "Pump 3 pressure low"}
    assert not list(gw.spool.outgoing.iterdir())
    assert (gw.spool.processed / "sheet.txt").read_bytes() == PRODUCT_SHEET
    stored = await gw.store.get_message(sheet[0][0])
    assert stored["origin"] == "spool" and stored["account"] == "myaddress@mydomain.com"


async def test_headers_groups_and_latin1(gateway_factory: Callable[..., Any],
                                         smsc: SmscSimulator, tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db",
                     groups=[{"name": "ops", "numbers": ["0701111111", "0702222222"]}],
                     processed="delete")
    assert gw.spool is not None
    drop(gw, "alarm", "To: ops, 0702222222\nTo: 0703333333\nSender: Omnigate\nFlash: yes\n\n"
                      "Värmepump 3: fel\n".encode("iso-8859-1"))
    answer = ok_lines(await wait_file(gw.spool.processed / "alarm.ok"))
    assert [n for _, n, _ in answer] == ["+46701111111", "+46702222222", "+46703333333"]
    assert not (gw.spool.processed / "alarm").exists()  # processed = "delete"
    assert not (gw.spool.outgoing / "alarm").exists()
    await smsc.wait_for(3)
    assert {s.text for s in smsc.submits} == {"Värmepump 3: fel"}
    assert {s.source for s in smsc.submits} == {"Omnigate"}
    assert {s.data_coding for s in smsc.submits} == {0x10}  # GSM 03.38, class 0: flash


@pytest.mark.parametrize(("data", "err"), [
    (b"To: 0701\n\nhi\n", "line 1: To: '0701' is not a valid number for region SE (too short)"),
    (b"To: nobody\n\nhi\n", "line 1: To: 'nobody' is neither a number nor a group"),
    (b"To: 0701234567\nSender: ThisIsFarTooLong\n\nhi\n", "line 2: Sender: "),
    (b"Hello there\n", "line 1: expected a header"),
    (b"To: 0701234567\n\n" + b"x" * 2000, "line 3: text needs 14 parts, at most 10"),
])
async def test_bad_file_goes_to_failed_with_the_reason(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        data: bytes, err: str) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db")
    assert gw.spool is not None
    drop(gw, "bad.sms", data)
    reason = await wait_file(gw.spool.failed / "bad.sms.err")
    assert reason.startswith(err), reason
    assert (gw.spool.failed / "bad.sms").read_bytes() == data
    assert not (gw.spool.outgoing / "bad.sms").exists()
    assert smsc.submit_count == 0


async def test_half_written_file_waits_until_complete(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db",
                     settle=0.4)
    assert gw.spool is not None
    (gw.spool.outgoing / "part.part").write_bytes(SMSTOOLS)  # never read: .part
    (gw.spool.outgoing / ".hidden").write_bytes(SMSTOOLS)  # never read: dot name
    path = gw.spool.outgoing / "slow"
    with path.open("wb") as fh:  # a writer that takes its time, written in place
        for chunk in (b"To: 0701234567\n", b"\nfirst half, ", b"second half"):
            fh.write(chunk)
            fh.flush()
            await asyncio.sleep(0.25)  # each pause shorter than settle
            assert path.exists(), "taken while still being written"
    started = time.monotonic()
    await wait_file(gw.spool.processed / "slow.ok")
    assert time.monotonic() - started < 2.0
    await smsc.wait_for(1)
    await asyncio.sleep(0.5)  # the two skipped files had every chance
    assert [s.text for s in smsc.submits] == ["first half, second half"]
    assert sorted(p.name for p in gw.spool.outgoing.iterdir()) == [".hidden", "part.part"]


async def test_burst_of_files(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                              tmp_path: Path, store_url: str) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, store_url, settle=0.1)
    assert gw.spool is not None
    count = 300
    for i in range(count):
        drop(gw, f"m{i:04d}", f"To: 0701{i:06d}\n\nburst {i}\n".encode())
    async with asyncio.timeout(30):
        while len(list(gw.spool.processed.glob("*.ok"))) < count:
            await asyncio.sleep(0.05)
    await smsc.wait_for(count, timeout=20)
    assert sorted(s.text for s in smsc.submits) == sorted(f"burst {i}" for i in range(count))
    assert not list(gw.spool.outgoing.iterdir()) and not list(gw.spool.failed.iterdir())


async def test_same_file_found_again_is_not_sent_twice(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    """The crash window in process: the first gateway committed the file's message and
    stopped before moving it; the next start finds the file and answers with that id."""
    url = f"sqlite+aiosqlite:///{tmp_path}/s.db"
    first = await gateway_factory(make_config(url, smsc.port, tmp_path))  # no [spool]
    outgoing = tmp_path / "spool" / "outgoing"
    outgoing.mkdir(parents=True)
    path = outgoing / "alarm"
    path.write_bytes(SMSTOOLS)
    from omnigate.model import Origin, SubmitRequest

    st = path.stat()
    accepted = await first.submit(SubmitRequest(
        to=["+46701234567"], text="Pump 3 pressure low", origin=Origin.SPOOL,
        client_ref=client_ref("alarm", st.st_mtime_ns, SMSTOOLS)))
    await smsc.wait_for(1)
    await first.stop()
    gw = await start(gateway_factory, smsc, tmp_path, url)
    assert gw.spool is not None
    answer = ok_lines(await wait_file(gw.spool.processed / "alarm.ok"))
    assert answer[0][0] == accepted[0].id
    await asyncio.sleep(0.3)
    assert smsc.submit_count == 1


async def test_same_name_twice_keeps_both(gateway_factory: Callable[..., Any],
                                          smsc: SmscSimulator, tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db",
                     settle=0.05)
    assert gw.spool is not None
    drop(gw, "alarm", SMSTOOLS)
    first = ok_lines(await wait_file(gw.spool.processed / "alarm.ok"))
    drop(gw, "alarm", SMSTOOLS)  # the same alarm again, later: a new message
    async with asyncio.timeout(TIMEOUT):
        while not (later := list(gw.spool.processed.glob("alarm.*.ok"))):
            await asyncio.sleep(0.02)
    second = ok_lines(later[0].read_text())
    assert later[0].name == f"alarm.{second[0][0]}.ok" and second[0][0] != first[0][0]
    assert (gw.spool.processed / "alarm.ok").read_text() != later[0].read_text()
    await smsc.wait_for(2)
    assert [s.text for s in smsc.submits] == ["Pump 3 pressure low"] * 2


async def test_inbound_lands_in_incoming_atomically(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db")
    assert gw.spool is not None
    received = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
    path = await gw.spool.deliver_inbound(
        Inbound(link="smsc1", sender="46701234567", recipient="4670000", text="Svar: ja, åk",
                received_at=received), ref="IN-2026-000123")
    assert path == gw.spool.incoming / "IN-2026-000123"
    assert path.read_text(encoding="utf-8") == (
        "From: 46701234567\nTo: 4670000\nReceived: 2026-11-22T01:02:03+00:00\n"
        "Ref: IN-2026-000123\n\nSvar: ja, åk\n")
    other = await gw.spool.deliver_inbound(
        Inbound(link="smsc1", sender="+46701234567", recipient="4670000", text="x",
                received_at=received))
    assert other.parent == gw.spool.incoming and other != path
    assert sorted(p.name for p in gw.spool.incoming.iterdir()) == sorted([path.name, other.name])
