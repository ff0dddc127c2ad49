"""Shared fixtures: store URLs (SQLite always, PostgreSQL when reachable) and a gateway
wired to a real SMSC simulator on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from omnigate.config import Config, parse

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


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/omnigate.db"
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("OMNIGATE_TEST_REQUIRE_PG=1 but OMNIGATE_TEST_PG_URL is not set")
        pytest.skip("PostgreSQL: set OMNIGATE_TEST_PG_URL to run")
    await reset_pg(PG_URL)
    return PG_URL


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
