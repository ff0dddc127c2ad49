"""The admin HTTP API of accounts and reports, mounted on the HTTP ingress's app.

Only accounts with the admin role may use it (with no accounts at start the API
is open to the allowed networks, as the rest of it is). Refusals are raised as
`SubmitError` and rendered by the HTTP gate like every other answer.

  GET    /api/v1/accounts                       every account with usage and balance
  POST   /api/v1/accounts                       {"name", "password"?, settings...}
  GET    /api/v1/accounts/{name}
  PATCH  /api/v1/accounts/{name}                settings to change
  DELETE /api/v1/accounts/{name}
  POST   /api/v1/accounts/{name}/keys           {"label"?} -> the key, shown this once
  DELETE /api/v1/accounts/{name}/keys/{id}
  POST   /api/v1/accounts/{name}/balance        {"topup": x} or {"set": x}, "note"?
  GET    /api/v1/reports/{traffic|billing|movements}?from=&to=&group=&period=&account=&format=csv
  GET    /api/v1/reports/balances
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from omnigate.accounts import reports
from omnigate.accounts.book import AccountBook
from omnigate.accounts.secrets import hash_password
from omnigate.api.http import _ACCOUNT
from omnigate.model import SubmitError

_MAX_NOTE = 200


def add_admin_routes(app: web.Application, book: AccountBook, *, open: bool) -> None:
    admin = _Admin(book, open)
    for method, path, handler in (
            ("GET", "/api/v1/accounts", admin.list),
            ("POST", "/api/v1/accounts", admin.create),
            ("GET", "/api/v1/accounts/{name}", admin.get),
            ("PATCH", "/api/v1/accounts/{name}", admin.patch),
            ("DELETE", "/api/v1/accounts/{name}", admin.delete),
            ("POST", "/api/v1/accounts/{name}/keys", admin.add_key),
            ("DELETE", "/api/v1/accounts/{name}/keys/{id}", admin.revoke_key),
            ("POST", "/api/v1/accounts/{name}/balance", admin.balance),
            ("GET", "/api/v1/reports/balances", admin.balances),
            ("GET", "/api/v1/reports/{kind}", admin.report)):
        app.router.add_route(method, path, handler)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        raise SubmitError("body", "not valid JSON") from None
    if not isinstance(data, dict):
        raise SubmitError("body", "must be a JSON object")
    return data


async def _settings(data: dict[str, Any]) -> dict[str, Any]:
    """API settings -> stored settings: a plain password becomes an argon2 hash."""
    for secret in ("password_hash", "api_key_hash"):
        if secret in data:
            raise SubmitError(secret, "set `password`, or make keys with POST .../keys")
    password = data.pop("password", None)
    if password is not None:
        if not isinstance(password, str) or not password:
            raise SubmitError("password", "must be a non-empty string")
        # argon2 costs ~50 ms and 64 MiB: off the loop
        data["password_hash"] = await asyncio.to_thread(hash_password, password)
    return data


class _Admin:
    def __init__(self, book: AccountBook, open: bool) -> None:
        self.book = book
        self.open = open

    def _check(self, request: web.Request) -> None:
        if self.open:
            return
        profile = self.book.profiles.get(request.get(_ACCOUNT, ""))
        if profile is None or profile.config.role != "admin":
            raise SubmitError("account", "needs an account with the admin role", "forbidden")

    async def list(self, request: web.Request) -> web.Response:
        self._check(request)
        return _json({"accounts": [self.book.describe(n) for n in sorted(self.book.profiles)]})

    async def get(self, request: web.Request) -> web.Response:
        self._check(request)
        return _json(self.book.describe(request.match_info["name"]))

    async def create(self, request: web.Request) -> web.Response:
        self._check(request)
        data = await _body(request)
        name = data.pop("name", None)
        if not isinstance(name, str) or not name:
            raise SubmitError("name", "missing")
        await self.book.put(name, await _settings(data), create=True)
        return _json(self.book.describe(name), 201)

    async def patch(self, request: web.Request) -> web.Response:
        self._check(request)
        name = request.match_info["name"]
        data = await _body(request)
        if "name" in data:
            raise SubmitError("name", "an account cannot be renamed")
        await self.book.put(name, await _settings(data), create=False)
        return _json(self.book.describe(name))

    async def delete(self, request: web.Request) -> web.Response:
        self._check(request)
        await self.book.remove(request.match_info["name"])
        return web.Response(status=204)

    async def add_key(self, request: web.Request) -> web.Response:
        self._check(request)
        label = (await _body(request)).get("label")
        if label is not None and (not isinstance(label, str) or len(label) > 128):
            raise SubmitError("label", "must be a string of at most 128 characters")
        return _json(await self.book.add_key(request.match_info["name"], label), 201)

    async def revoke_key(self, request: web.Request) -> web.Response:
        self._check(request)
        await self.book.revoke_key(request.match_info["name"], request.match_info["id"])
        return web.Response(status=204)

    async def balance(self, request: web.Request) -> web.Response:
        self._check(request)
        data = await _body(request)
        kinds = [k for k in ("topup", "set") if k in data]
        if len(kinds) != 1:
            raise SubmitError("body", "give exactly one of topup or set")
        amount = data[kinds[0]]
        if isinstance(amount, bool) or not isinstance(amount, int | float) \
                or (kinds[0] == "topup" and amount <= 0):
            raise SubmitError(kinds[0], "must be a number (a top-up above 0)")
        note = data.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > _MAX_NOTE):
            raise SubmitError("note", f"must be a string of at most {_MAX_NOTE} characters")
        name = request.match_info["name"]
        balance = await self.book.move(name, float(amount), kinds[0], note)
        return _json({"account": name, "balance": balance, "currency": self.book.billing.currency})

    async def balances(self, request: web.Request) -> web.Response:
        self._check(request)
        rows = [{"account": n, "balance": self.book.usage[n].balance,
                 "credit_limit": p.config.credit_limit, "currency": self.book.billing.currency}
                for n, p in sorted(self.book.profiles.items()) if p.prepaid]
        return self._render(request, rows)

    async def report(self, request: web.Request) -> web.Response:
        self._check(request)
        kind = request.match_info["kind"]
        assert self.book.store is not None
        engine = self.book.store.engine
        q = request.query
        common = {"since": q.get("from"), "until": q.get("to"), "account": q.get("account")}
        if kind == "traffic":
            rows = await reports.traffic(engine, group=q.get("group"), period=q.get("period"),
                                         **common)
        elif kind == "billing":
            rows = await reports.billing(engine, group=q.get("group"), period=q.get("period"),
                                         **common)
        elif kind == "movements":
            rows = await reports.movements(engine, **common)
        else:
            raise SubmitError("path", f"no report {kind!r} (traffic, billing, movements, "
                                      "balances)", "not_found")
        return self._render(request, rows)

    def _render(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        fmt = request.query.get("format", "json")
        if fmt == "csv":
            return web.Response(text=reports.to_csv(rows), content_type="text/csv")
        if fmt != "json":
            raise SubmitError("format", "use json or csv")
        return _json({"rows": rows, "currency": self.book.billing.currency})
