"""A gateway with web pages and two accounts, an SMPP simulator with receipts, and
Debian's Chromium (headless, driven by Playwright; no browser download)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from omnigate.api.auth import hash_secret
from omnigate.gateway import Gateway
from tests.support import make_config

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
PASSWORDS = {"desk": "desk-password", "anna": "anna-password"}
_HASHES = {name: hash_secret(pw) for name, pw in PASSWORDS.items()}  # once per session


@dataclass
class Ui:
    gw: Gateway
    smsc: Any
    base: str
    page: Any  # playwright.async_api.Page

    async def login(self, account: str = "desk") -> None:
        await self.page.goto(f"{self.base}/ui/login")
        await self.page.get_by_label("Account").fill(account)
        await self.page.get_by_label("Password").fill(PASSWORDS[account])
        await self.page.get_by_role("button", name="Log in").click()
        await self.page.wait_for_url(re.compile(r"/ui/send$"))

    async def shot(self, name: str, **kwargs: Any) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True, **kwargs)
        return path

    async def wait_text(self, selector: str, wanted: str, timeout: float = 10.0) -> None:
        """Reload until `selector` shows `wanted` (as a person pressing F5 would)."""
        deadline = time.monotonic() + timeout
        while True:
            got = (await self.page.locator(selector).inner_text()).strip()
            if got == wanted:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{selector} shows {got!r}, not {wanted!r}")
            await self.page.wait_for_timeout(150)
            await self.page.reload()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def ui(smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
             browser: Any) -> AsyncIterator[Ui]:
    accounts = [{"name": "desk", "role": "admin", "password_hash": _HASHES["desk"]},
                {"name": "anna", "password_hash": _HASHES["anna"]}]
    config = make_config(f"sqlite+aiosqlite:///{tmp_path}/omnigate.db", smsc.port, tmp_path,
                         accounts=accounts, web={},
                         inbound={"default": [f"file:{tmp_path}/in"], "wait": 1.0})
    gw = await gateway_factory(config)
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    yield Ui(gw, smsc, f"http://127.0.0.1:{gw.http_port}", page)
    await context.close()
