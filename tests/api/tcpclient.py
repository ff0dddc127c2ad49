"""A raw-socket client of the TCP line protocol for tests (asyncio streams, no telnetlib),
and the gateway config that turns the protocol on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from omnigate.api.auth import hash_secret
from omnigate.config import Config
from tests.support import make_config

TIMEOUT = 5.0
ADMIN_PASSWORD = "s3cret admin"  # with a space: AUTH takes the rest of the line
USER_PASSWORD = "user-pw"
# hashing costs tens of milliseconds: once per test run
ACCOUNTS = [{"name": "ops", "role": "admin", "password_hash": hash_secret(ADMIN_PASSWORD)},
            {"name": "pbx", "password_hash": hash_secret(USER_PASSWORD)}]


def tcp_config(store_url: str, smsc_port: int, tmp_path: Path, *, accounts: bool = True,
               **tcp: Any) -> Config:
    overrides: dict[str, Any] = {k: tcp.pop(k) for k in ("links", "routes", "messages")
                                 if k in tcp}
    if accounts:
        overrides["accounts"] = ACCOUNTS
    return make_config(store_url, smsc_port, tmp_path,
                       tcp={"listen": "127.0.0.1:0", **tcp}, **overrides)


class Client:
    """Writes raw bytes, reads answer lines; every read is bounded in time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 eol: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.eol = eol

    @classmethod
    async def connect(cls, port: int, eol: bytes = b"\r\n") -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer, eol)

    @classmethod
    async def session(cls, port: int, eol: bytes = b"\r\n", login: str | None = None) -> Client:
        """Connected, greeted, and logged in as `login` ("ops" or "pbx") if given."""
        client = await cls.connect(port, eol)
        assert (await client.line()).startswith("+OK omnigate ")
        if login:
            password = ADMIN_PASSWORD if login == "ops" else USER_PASSWORD
            assert (await client.ask(f"AUTH {login} {password}")).startswith("+OK logged in")
        return client

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, *lines: str) -> None:
        await self.write(b"".join(line.encode() + self.eol for line in lines))

    async def line(self, timeout: float = TIMEOUT) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        assert raw.endswith(b"\r\n"), f"no CRLF line: {raw!r}"
        return raw[:-2].decode()

    async def ask(self, command: str, timeout: float = TIMEOUT) -> str:
        await self.send(command)
        return await self.line(timeout)

    async def block(self) -> tuple[str, list[str]]:
        """A multi-line answer: its first line and the dot-unstuffed lines before '.'."""
        head = await self.line()
        assert head.startswith("+OK"), head
        lines = []
        while (line := await self.line()) != ".":
            lines.append(line[1:] if line.startswith(".") else line)
        return head, lines

    async def closed(self, timeout: float = TIMEOUT) -> bool:
        """True when the server closes the connection (after any lines still pending)."""
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b"" or self.reader.at_eof()
