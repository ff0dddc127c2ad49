"""Provider callbacks on the HTTP API: `/hooks/<link>/dlr` and `/hooks/<link>/mo`.

This route only finds the link by name; the link owns what its callbacks look like
and who may send them (`handle_hook`, see `carriers/http/hooks.py`). The API's own
network allowlist and accounts do not apply here: a provider on the internet has no
account, and each link checks its own token, HMAC and `hook_allow` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

PREFIX = "/hooks/"


@runtime_checkable
class HookTarget(Protocol):
    """A link that takes provider callbacks."""

    async def handle_hook(self, kind: str, request: web.Request) -> web.Response: ...


def add_hooks(app: web.Application, links: Mapping[str, Any]) -> None:
    """Route callbacks to `links` (looked up per request: links are built after the app)."""

    async def hook(request: web.Request) -> web.Response:
        name = request.match_info["link"]
        link = links.get(name)
        if link is None:
            return web.Response(status=404, text=f"ERROR no link {name!r}\n")
        if not isinstance(link, HookTarget):
            return web.Response(status=404, text=f"ERROR link {name!r} takes no callbacks\n")
        return await link.handle_hook(request.match_info["kind"], request)

    app.router.add_route("*", PREFIX + "{link}/{kind}", hook)
