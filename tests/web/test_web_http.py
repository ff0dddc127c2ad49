"""The web pages over plain HTTP (aiohttp client): config, feature off, refusals, CSV rules."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from omnigate.config import ConfigError, parse
from omnigate.web.book import BookError, from_csv
from tests.support import make_config
from tests.web.conftest import _HASHES

README = (Path(__file__).parent.parent.parent / "README.md").read_text()


def test_readme_web_block_is_valid_and_bad_values_name_their_path() -> None:
    [block] = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if "[web]" in b]
    config = parse(tomllib.loads(block))
    assert config.web is not None and config.web.session_ttl == 28800
    with pytest.raises(ConfigError) as err:
        parse({"web": {"session_ttl": 0, "colour": "blue"}})
    text = "\n".join(err.value.problems)
    assert "web.session_ttl" in text and "web.colour" in text


def test_csv_import_names_the_bad_line() -> None:
    rows = from_csv("number,name\n+46701,Ann\n", "anna", admin=False)
    assert rows == [("anna", "Ann", "+46701", ())]
    with pytest.raises(BookError, match="columns name"):
        from_csv("phone\n+46701\n", "anna", admin=False)
    with pytest.raises(BookError, match=r"line 3 number: digits"):
        from_csv("name,number\nAnn,+46701\nBo,phone me\n", "anna", admin=False)
    with pytest.raises(BookError, match=r"line 2 groups"):
        from_csv("name,number,groups\nAnn,+46701,<script>\n", "anna", admin=True)


async def _gateway(gateway_factory: Callable[..., Any], smsc: Any, tmp_path: Path,
                   store_url: str | None = None, **overrides: Any) -> str:
    config = make_config(store_url or f"sqlite+aiosqlite:///{tmp_path}/o.db", smsc.port, tmp_path,
                         accounts=[{"name": "desk", "role": "admin",
                                    "password_hash": _HASHES["desk"]}], **overrides)
    gw = await gateway_factory(config)
    return f"http://127.0.0.1:{gw.http_port}"


async def _login_token(http: aiohttp.ClientSession, base: str) -> str:
    """The login form's CSRF token (its cookie lands in the session's jar)."""
    async with http.get(f"{base}/ui/login") as resp:
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        return re.search(r'name="csrf" value="([^"]+)"', await resp.text())[1]


async def test_pages_absent_without_web_section(gateway_factory: Callable[..., Any], smsc: Any,
                                                tmp_path: Path) -> None:
    base = await _gateway(gateway_factory, smsc, tmp_path)
    async with aiohttp.ClientSession() as http, http.get(f"{base}/ui/login") as resp:
        assert resp.status == 404  # feature off: no such page


async def test_refusals(gateway_factory: Callable[..., Any], smsc: Any, tmp_path: Path) -> None:
    base = await _gateway(gateway_factory, smsc, tmp_path, web={})
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{base}/ui/messages", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/ui/login")
        async with http.get(f"{base}/ui/static/app.js") as resp:
            assert resp.status == 200 and "omnigateCount" in await resp.text()
        # a login post without the login form's token (another site's form) is refused
        async with http.post(f"{base}/ui/login", data={"username": "desk",
                                                        "password": "desk-password"},
                             allow_redirects=False) as resp:
            assert resp.status == 403
        token = await _login_token(http, base)
        async with http.post(f"{base}/ui/login", data={"username": "desk", "password": "nope",
                                                        "csrf": token}) as resp:
            assert resp.status == 401 and "Wrong name or password." in await resp.text()
        async with http.post(f"{base}/ui/login", data={"username": "desk",
                                                        "password": "desk-password",
                                                        "csrf": token},
                             allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/ui/send")
        # logged in, a form posted without the session's token changes nothing
        async with http.post(f"{base}/ui/links/smsc1/suspend", data={}) as resp:
            assert resp.status == 403
        async with http.get(f"{base}/ui/messages/123") as resp:
            assert resp.status == 404


async def test_links_page_lists_cluster_nodes(gateway_factory: Callable[..., Any], smsc: Any,
                                              tmp_path: Path, pg_url: str) -> None:
    base = await _gateway(gateway_factory, smsc, tmp_path, pg_url, web={},
                          node={"name": "alpha", "id": 1},
                          cluster={"heartbeat": 0.2, "lease": 1.0})
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        token = await _login_token(http, base)
        async with http.post(f"{base}/ui/login", data={"username": "desk", "csrf": token,
                                                        "password": "desk-password"}) as resp:
            assert resp.status == 200
        async with http.get(f"{base}/ui/links") as resp:
            page = await resp.text()
    row = re.search(r'<tr data-node="alpha">(.*?)</tr>', page, re.S)
    assert row is not None, page
    assert "alive" in row[1]
