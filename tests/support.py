"""Helpers shared by tests and the benchmark: PostgreSQL reset, test configs, and what
the end-to-end gateway tests and the carrier link tests share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnigate.carriers.base import Link, LinkState
from omnigate.config import Config, parse
from omnigate.model import DeliveryReport, FailureKind, Inbound, Part
from omnigate.sms.numbers import Address
from omnigate.sms.segment import segment

if TYPE_CHECKING:
    import aiohttp

    from omnigate.gateway import Gateway
    from omnigate.sim.base import Simulator

PG_URL = os.environ.get("OMNIGATE_TEST_PG_URL")
REQUIRE_PG = os.environ.get("OMNIGATE_TEST_REQUIRE_PG") == "1"


async def reset_pg(url: str) -> None:
    """Drop omnigate's tables so each PostgreSQL test starts from an empty store."""
    from omnigate.store.db import make_engine
    from omnigate.store.schema import metadata

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
    finally:
        await engine.dispose()


def make_config(store_url: str, smsc_port: int, tmp_path: Path, **overrides: Any) -> Config:
    """A gateway config for tests: HTTP on an ephemeral port, one SMPP link."""
    link = {"name": "smsc1", "type": "smpp", "hosts": [f"127.0.0.1:{smsc_port}"],
            "system_id": "omnigate", "password": "secret", "reconnect_min": 0.1,
            "reconnect_max": 0.5}
    link.update(overrides.pop("link", {}))
    data: dict[str, Any] = {
        "store": {"url": store_url},
        "http": {"listen": "127.0.0.1:0"},
        "links": [link],
        "routes": [{"tiers": [["smsc1"]]}],
        "traffic_log": {"path": str(tmp_path / "traffic.log")},
        "retry": {"initial": 0.1, "maximum": 0.5},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return parse(data)


# --- end-to-end gateway tests ---------------------------------------------------------

FINAL = {"delivered", "undelivered", "failed", "expired"}


def make_link_config(store_url: str, tmp_path: Path, entry: dict[str, Any],
                     **overrides: Any) -> Config:
    """`make_config` with this one [[links]] entry and a route to it."""
    return make_config(store_url, 0, tmp_path, links=[entry],
                       routes=[{"tiers": [[entry["name"]]]}], **overrides)


async def wait_status(session: aiohttp.ClientSession, base: str, id: int, wanted: set[str],
                      timeout: float = 10.0) -> dict[str, Any]:
    """Poll the API (the way a user would) until the message reaches one of `wanted`."""
    deadline = time.monotonic() + timeout
    while True:
        async with session.get(f"{base}/api/v1/messages/{id}") as resp:
            body = await resp.json()
        if body.get("status") in wanted:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"message {id} stuck in {body.get('status')}: {body}")
        await asyncio.sleep(0.05)


async def send_form(session: aiohttp.ClientSession, base: str, numbers: list[str],
                    text: str) -> list[int]:
    """GET /send to these numbers (the Kannel-style form); the message ids, in order."""
    async with session.get(f"{base}/send", params={"numbers": ",".join(numbers),
                                                   "text": text}) as resp:
        assert resp.status == 200, await resp.text()
        return [int(line.split()[1]) for line in (await resp.text()).strip().splitlines()]


async def wait_all_sent(session: aiohttp.ClientSession, base: str, ids: list[int],
                        timeout: float = 20.0) -> None:
    """Every one of these messages reaches "sent" (each within `timeout`)."""
    for id in ids:
        assert (await wait_status(session, base, id, {"sent"}, timeout))["status"] == "sent"


async def wait_inbound(gw: Gateway, timeout: float = 5.0) -> list[Any]:
    """Poll the store until MO rows appear (or `timeout`); the rows, maybe none."""
    from sqlalchemy import select

    from omnigate.store import schema

    deadline = time.monotonic() + timeout
    while True:
        async with gw.store.engine.connect() as conn:
            rows = (await conn.execute(select(schema.inbound))).all()
        if rows or time.monotonic() > deadline:
            return list(rows)
        await asyncio.sleep(0.05)


# --- carrier link tests ------------------------------------------------------------------

WAIT = 5.0
SENDER = Address("Omnigate", 5, 0)
LONG_GSM = "The quick brown fox jumps over the lazy dog. " * 8  # 360 chars: 3 parts
LONG_UCS2 = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 3


class Recorder:
    """A LinkEvents that keeps everything and wakes waiters on every callback."""

    def __init__(self) -> None:
        self.sent: list[tuple[Part, str]] = []
        self.failed: list[tuple[Part, FailureKind, str]] = []
        self.mo: list[Inbound] = []
        self.reports: list[DeliveryReport] = []
        self.states: list[LinkState] = []
        self._changed = asyncio.Event()

    def on_sent(self, part: Part, carrier_ref: str) -> None:
        self.sent.append((part, carrier_ref))
        self._changed.set()

    def on_failed(self, part: Part, kind: FailureKind, reason: str) -> None:
        self.failed.append((part, kind, reason))
        self._changed.set()

    def on_mo(self, inbound: Inbound) -> None:
        self.mo.append(inbound)
        self._changed.set()

    def on_report(self, report: DeliveryReport) -> None:
        self.reports.append(report)
        self._changed.set()

    def on_state(self, link: Link, state: LinkState) -> None:
        self.states.append(state)
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait for `condition` to hold, re-checking on every callback."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    @property
    def settled(self) -> int:
        return len(self.sent) + len(self.failed)


async def poll(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """For conditions no callback announces (capacity after a back-off): bounded re-checks."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


class LogRecords(logging.Handler):
    """Log lines as they come, for asserting on what a link logs (and does not)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.event.set()

    @classmethod
    @contextlib.contextmanager
    def attached(cls, logger_name: str) -> Iterator[LogRecords]:
        """Records of this logger (at DEBUG) while the block runs."""
        log = cls()
        logger = logging.getLogger(logger_name)
        level = logger.level
        logger.addHandler(log)
        logger.setLevel(logging.DEBUG)
        try:
            yield log
        finally:
            logger.removeHandler(log)
            logger.setLevel(level)

    async def until(self, condition: Callable[[list[str]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition(self.lines):
                self.event.clear()
                await self.event.wait()


def parts(text: str, *, message_id: int = 1, ref: int = 7, sender: Address | None = SENDER,
          recipient: str = "46701234567", **kw: Any) -> list[Part]:
    """The parts the core would hand a link for this text."""
    seg = segment(text, max_parts=10)
    total = len(seg.parts)
    return [Part(message_id=message_id, seq=i, total=total, recipient=recipient, sender=sender,
                 coding=seg.coding, data=data, concat=(ref, total, i) if total > 1 else None,
                 **kw)
            for i, data in enumerate(seg.parts, start=1)]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class LinkFactory:
    """Starts links of one type on a simulator (or `hosts`), with fast reconnects, these
    defaults and each call's overrides; `terminate_all` ends every one it started."""

    recorder: type[Recorder] = Recorder  # the LinkEvents each link gets

    def __init__(self, cls: type[Link], **defaults: Any) -> None:
        self.cls = cls
        self.defaults = defaults
        self.links: list[Link] = []

    async def __call__(self, sim: Any, up: bool = True, hosts: list[str] | None = None,
                       **overrides: Any) -> tuple[Any, Recorder]:
        fields: dict[str, Any] = dict(
            type=self.cls.protocol, hosts=hosts or [f"127.0.0.1:{sim.port}"],
            reconnect_min=0.05, reconnect_max=0.2, connect_timeout=2.0)
        fields.update(self.defaults)
        fields.update(overrides)
        rec = self.recorder()
        link = self.cls(self.cls.config_model.model_validate(fields), rec)
        self.links.append(link)
        await link.start()
        if up:
            await rec.until(lambda: link.state is LinkState.UP)
        return link, rec

    def terminate_all(self) -> None:
        for link in self.links:
            link.terminate()


def link_fixture(cls: type[Link], **defaults: Any) -> Any:
    """A `make_link` fixture: a LinkFactory for `cls`, its links terminated after the test."""
    import pytest

    @pytest.fixture
    async def make_link() -> AsyncIterator[LinkFactory]:
        factory = LinkFactory(cls, **defaults)
        yield factory
        factory.terminate_all()

    return make_link


def sim_fixture(cls: type[Simulator[Any, Any]], **options: Any) -> Any:
    """A `sim` fixture: a running simulator; a strict one must have seen no violation."""
    import pytest

    @pytest.fixture
    async def sim() -> AsyncIterator[Any]:
        async with cls(**options) as s:
            yield s
        assert getattr(s, "violations", []) == []  # the strict peer found nothing wrong

    return sim
