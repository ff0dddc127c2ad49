"""HTTP API of on-call: who is on call now (or at a time), and alarms with their timeline.

Mounted on the main application, so its middleware checks networks and
credentials as for every other /api/v1 path.
"""

from __future__ import annotations

import datetime as dt

import orjson
from aiohttp import web

from omnigate.model import SubmitError
from omnigate.oncall.service import OnCallService

_LIMIT_MAX = 1000


def add_oncall_routes(app: web.Application, oncall: OnCallService) -> None:
    api = _Api(oncall)
    app.router.add_get("/api/v1/schedules/{name}/now", api.now)
    app.router.add_get("/api/v1/alarms", api.list)
    app.router.add_get("/api/v1/alarms/{id}", api.get)


def _json(data: object) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


class _Api:
    def __init__(self, oncall: OnCallService) -> None:
        self.oncall = oncall

    async def now(self, request: web.Request) -> web.Response:
        """{"schedule", "at", "timezone", "numbers", "why"}; ?at=ISO 8601 asks about another
        time (without an offset: the schedule's local time)."""
        name = request.match_info["name"].lower()
        schedule = self.oncall.schedules.get(name)
        if schedule is None:
            raise SubmitError("name", f"no schedule named {name[:64]!r}", "not_found")
        at: dt.datetime | float = self.oncall.clock()
        if "at" in request.query:
            try:
                at = schedule.local_time(request.query["at"])
            except ValueError:
                raise SubmitError("at", "expected ISO 8601, e.g. 2026-12-24T22:00") from None
        oncall = schedule.who(at)
        return _json({"schedule": name, "at": oncall.at.isoformat(), "timezone": schedule.config.timezone,
                      "numbers": list(oncall.numbers), "why": oncall.why})

    async def get(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not (raw.isascii() and raw.isdigit() and len(raw) < 20):
            raise SubmitError("id", "not an alarm id")
        alarm = await self.oncall.alarm(int(raw))
        if alarm is None:
            raise SubmitError("id", f"no alarm {raw}", "not_found")
        return _json(alarm)

    async def list(self, request: web.Request) -> web.Response:
        status = request.query.get("status") or None
        if status not in (None, "open", "acknowledged"):
            raise SubmitError("status", "open or acknowledged")
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise SubmitError("limit", "not a number") from None
        if not 1 <= limit <= _LIMIT_MAX:
            raise SubmitError("limit", f"1..{_LIMIT_MAX}")
        return _json({"alarms": await self.oncall.alarms(status, limit)})
