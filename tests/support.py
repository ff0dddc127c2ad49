"""Helpers shared by tests and the benchmark: PostgreSQL reset, test configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
