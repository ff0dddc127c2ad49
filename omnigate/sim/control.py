"""HTTP control endpoint of every simulator (`omnigate sim smpp|cimd2|ucp --control HOST:PORT`).

- `POST /mo`      JSON or form with `from`, `to`, `text`: send an MO to a bound peer.
                  200 once acknowledged; 400 for missing fields; 409 if nothing
                  can take it (no receiver bound, refused, no answer).
- `GET /submits`  the last `limit` (default 100) recorded submits, oldest first.
- `GET /stats`    counters, binds and the current faults.
- `POST /faults`  JSON object with any of the fault attributes; answers the faults now set.

No authentication: it is a test tool; listen on loopback.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from omnigate.sim.base import Simulator

SIM_KEY: web.AppKey[Simulator[Any, Any]] = web.AppKey("sim")
MAX_LIMIT = 100_000  # most submits one GET /submits returns


def _bad(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def _read_fields(request: web.Request) -> dict[str, object] | None:
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None
    return dict(await request.post())


async def post_mo(request: web.Request) -> web.Response:
    from omnigate.sim.base import SimulatorError

    fields = await _read_fields(request)
    if fields is None:
        return _bad("body must be a JSON object or a form")
    missing = [k for k in ("from", "to", "text") if not isinstance(fields.get(k), str)]
    if missing:
        return _bad(f"missing or not text: {', '.join(missing)}")
    if not fields["from"] or not fields["to"]:
        return _bad("from and to must not be empty")
    try:
        await request.app[SIM_KEY].inject_mo(
            str(fields["from"]), str(fields["to"]), str(fields["text"])
        )
    except SimulatorError as e:
        return _bad(str(e), status=409)
    except ValueError as e:
        return _bad(str(e))
    return web.json_response({"ok": True})


async def get_submits(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return _bad("limit must be a whole number")
    if not 0 <= limit <= MAX_LIMIT:
        return _bad(f"limit must be 0-{MAX_LIMIT}")
    submits = request.app[SIM_KEY].submits
    recent = list(itertools.islice(reversed(submits), limit))
    recent.reverse()
    return web.json_response([rec.as_dict() for rec in recent])


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].stats())


async def post_faults(request: web.Request) -> web.Response:
    try:
        values = await request.json()
    except json.JSONDecodeError:
        return _bad("body must be a JSON object")
    if not isinstance(values, dict):
        return _bad("body must be a JSON object")
    sim = request.app[SIM_KEY]
    try:
        sim.set_faults(**values)
    except ValueError as e:
        return _bad(str(e))
    return web.json_response(sim.faults())


def make_app(sim: Simulator[Any, Any]) -> web.Application:
    app = web.Application()
    app[SIM_KEY] = sim
    app.router.add_post("/mo", post_mo)
    app.router.add_get("/submits", get_submits)
    app.router.add_get("/stats", get_stats)
    app.router.add_post("/faults", post_faults)
    return app


async def start_control(sim: Simulator[Any, Any], host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the control app; returns the runner (cleanup() to stop) and the bound port."""
    runner = web.AppRunner(make_app(sim), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
