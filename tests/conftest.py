"""Shared fixtures: store URLs (SQLite always, PostgreSQL when reachable) and a gateway
wired to a real SMSC simulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from omnigate.config import Config
from tests.support import PG_URL, REQUIRE_PG, reset_pg


async def _empty_pg() -> str:
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("OMNIGATE_TEST_REQUIRE_PG=1 but OMNIGATE_TEST_PG_URL is not set")
        pytest.skip("PostgreSQL: set OMNIGATE_TEST_PG_URL to run")
    await reset_pg(PG_URL)
    return PG_URL


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/omnigate.db"
    return await _empty_pg()


@pytest.fixture
async def pg_url() -> str:
    """An empty PostgreSQL store, for tests of what only a server can do."""
    return await _empty_pg()


@pytest.fixture
async def smsc() -> AsyncIterator[Any]:
    from omnigate.sim.smpp import SmscSimulator

    sim = SmscSimulator(system_id="omnigate", password="secret", dlr=True)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start gateways on demand; every one started is stopped at the end."""
    from omnigate.gateway import Gateway

    started: list[Gateway] = []

    async def start(config: Config) -> Gateway:
        gw = Gateway(config)
        await gw.start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        await gw.stop(grace=2.0)
