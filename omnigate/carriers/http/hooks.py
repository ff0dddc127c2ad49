"""Callbacks from an HTTP provider: delivery reports and inbound SMS, per link.

The route (`api/webhooks.py`, or the link's own `listen` port) only finds the link;
what a callback looks like and who may send it is the link's: `Hooks.handle` checks
the sender (network allowlist: 403; shared token or HMAC of the body: 401), reads the
fields its profile names (query, form, or JSON pointers: 400 naming what is missing or
wrong), drops a duplicate (providers resend until they see 2xx), and hands reports and
MO to the link's events before answering: the dispatcher queues the row for the
store's writer in that call, so the provider's 200 comes after the hand-over.

Duplicates are remembered in memory (`SEEN_MAX` keys, `SEEN_FOR` seconds): by the
provider's notification id where it sends one, else by the whole request.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from omnigate.carriers.base import LinkEvents, LinkLog
from omnigate.model import DeliveryReport, Inbound, Status
from omnigate.sms.coding import Coding
from omnigate.sms.gsm import is_gsm

from .config import HttpConfig
from .template import render_text

SEEN_MAX = 100_000
SEEN_FOR = 3600.0  # providers give up resending well within an hour
BODY_MAX = 64 * 1024  # a callback is one small document
TOKEN_HEADER = "X-Hook-Token"
KINDS = ("dlr", "mo")


class HookRefused(Exception):
    """Answer the provider with `status` and this reason; nothing was changed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def pointer(doc: Any, ptr: str) -> Any:
    """RFC 6901 JSON pointer; a `*` segment maps over an array. None when absent."""
    if ptr == "":
        return doc
    parts = ptr[1:].split("/")
    for i, raw in enumerate(parts):
        key = raw.replace("~1", "/").replace("~0", "~")
        if key == "*" and isinstance(doc, list):
            rest = "/" + "/".join(parts[i + 1:]) if i + 1 < len(parts) else ""
            return [pointer(item, rest) for item in doc]
        if isinstance(doc, dict):
            doc = doc.get(key)
        elif isinstance(doc, list) and key.isdigit() and int(key) < len(doc):
            doc = doc[int(key)]
        else:
            return None
        if doc is None:
            return None
    return doc


@dataclass(slots=True)
class Callback:
    """One callback request as read: query, form or JSON body, raw body for HMAC."""

    query: Mapping[str, str]
    form: Mapping[str, str]
    json: Any
    raw: bytes

    def get(self, name: str) -> str | None:
        """A field: a JSON pointer ('/a/b') into the body, else a query or form field."""
        if name.startswith("/"):
            value = pointer(self.json, name)
        else:
            value = self.query.get(name)
            if value is None:
                value = self.form.get(name)
            if value is None and isinstance(self.json, dict):
                value = self.json.get(name)
        if value is None or isinstance(value, dict | list):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


async def read_callback(request: web.Request) -> Callback:
    """The request's fields; 400 for a body that is not what its type says."""
    if request.content_length is not None and request.content_length > BODY_MAX:
        raise HookRefused(413, f"body larger than {BODY_MAX} bytes")
    raw = await request.content.read(BODY_MAX + 1)
    if len(raw) > BODY_MAX:
        raise HookRefused(413, f"body larger than {BODY_MAX} bytes")
    form: Mapping[str, str] = {}
    doc: Any = None
    ctype = request.content_type
    if raw and ctype == "application/x-www-form-urlencoded":
        try:
            form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                  strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise HookRefused(400, "body: not a valid form") from None
    elif raw and (ctype == "application/json" or ctype.endswith("+json") or raw[:1] in b"{["):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise HookRefused(400, "body: not valid JSON") from None
    query: MultiDictProxy[str] = request.query
    return Callback(query, form, doc, raw)


class Hooks:
    """One link's callbacks: its URLs, who may call, what the fields mean."""

    def __init__(self, name: str, settings: HttpConfig, events: LinkEvents, log: LinkLog) -> None:
        self.name = name
        self.s = settings
        self.events = events
        self.log = log
        self.base = (settings.callback_base or "").rstrip("/") or None
        self._allow = [ipaddress.ip_network(n, strict=False) for n in settings.hook_allow]
        self._token = settings.hook_token.get_secret_value().encode() if settings.hook_token else None
        self._hmac = (settings.hook_hmac_secret.get_secret_value().encode()
                      if settings.hook_hmac_secret else None)
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._delivered = frozenset(settings.dlr_delivered or ())
        self._expired = frozenset(settings.dlr_expired or ())
        self._pending = frozenset(settings.dlr_pending or ())

    @property
    def enabled(self) -> bool:
        """Callbacks are taken only from a provider that proves itself (token or HMAC)."""
        return self.base is not None and (self._token is not None or self._hmac is not None)

    def url(self, kind: str, values: Mapping[str, Any] | None = None, parts: int = 1) -> str | None:
        """Our callback URL for the provider: token, part count, the profile's query."""
        if not self.enabled:
            return None
        params: dict[str, str] = {}
        if self._token is not None and self._hmac is None:
            params["token"] = self._token.decode()
        if parts > 1:
            params["n"] = str(parts)
        query = urlencode(params)
        if kind == "dlr" and self.s.callback_query and values is not None:
            extra = render_text(self.s.callback_query, values)
            query = f"{query}&{extra}" if query else extra
        return f"{self.base}/hooks/{self.name}/{kind}" + (f"?{query}" if query else "")

    # -- who may call ------------------------------------------------------------

    def verify(self, request: web.Request, cb: Callback) -> None:
        if not self.enabled:
            raise HookRefused(403, f"link {self.name} takes no callbacks "
                                   "(set callback_base and hook_token or hook_hmac_secret)")
        if self._allow:
            try:
                address = ipaddress.ip_address(request.remote or "")
            except ValueError:
                raise HookRefused(403, "caller address unknown") from None
            if not any(address in net for net in self._allow):
                raise HookRefused(403, f"{address} is not in hook_allow")
        if self._hmac is not None:
            given = request.headers.get(self.s.hook_hmac_header, "").removeprefix("sha256=")
            want = hmac.new(self._hmac, cb.raw, hashlib.sha256).hexdigest()
            if not given or not hmac.compare_digest(given.lower(), want):
                raise HookRefused(401, f"bad or missing {self.s.hook_hmac_header} signature")
        else:
            given = request.headers.get(TOKEN_HEADER) or cb.query.get("token") or ""
            if not hmac.compare_digest(given.encode(), self._token or b""):
                raise HookRefused(401, "bad or missing token")

    def _duplicate(self, key: str) -> bool:
        now = time.monotonic()
        seen = self._seen
        while seen:
            first, at = next(iter(seen.items()))
            if now - at < SEEN_FOR and len(seen) < SEEN_MAX:
                break
            del seen[first]
        if key in seen:
            return True
        seen[key] = now
        return False

    def _key(self, kind: str, cb: Callback, fields: Mapping[str, str]) -> str:
        name = fields.get("key")
        value = cb.get(name) if name else None
        if value:
            return f"{kind}:{value}"
        digest = hashlib.sha256(cb.raw)
        digest.update(orjson.dumps(sorted(cb.query.items())))
        return f"{kind}#{digest.hexdigest()}"

    # -- what it says ------------------------------------------------------------

    def reports(self, cb: Callback) -> list[DeliveryReport]:
        """The reports of one DLR callback: one per part the reference stands for."""
        fields = self.s.dlr_fields or {}
        ref = _required(cb, fields, "id")
        raw_status = _required(cb, fields, "status")
        if raw_status in self._pending:
            return []
        if raw_status in self._delivered:
            status = Status.DELIVERED
        elif raw_status in self._expired:
            status = Status.EXPIRED
        else:
            status = Status.UNDELIVERED
        if "recipient" in fields:
            ref = f"{ref}:{_required(cb, fields, 'recipient').lstrip('+')}"
        error_field = fields.get("error")
        error = cb.get(error_field) if error_field else None
        if status is not Status.DELIVERED and not error:
            error = raw_status
        n = cb.query.get("n", "1")
        if not n.isdigit() or not 1 <= int(n) <= 255:
            raise HookRefused(400, "n: not a part count")
        now = datetime.now(UTC)
        refs = [ref] if n == "1" else [f"{ref}#{seq}" for seq in range(1, int(n) + 1)]
        return [DeliveryReport(self.name, r, status, error, now) for r in refs]

    def inbound(self, cb: Callback) -> Inbound:
        fields = self.s.mo_fields or {}
        sender = _required(cb, fields, "from").lstrip("+")
        recipient = _required(cb, fields, "to").lstrip("+")
        text = _required(cb, fields, "text", empty_ok=True)
        return Inbound(self.name, sender, recipient, text, datetime.now(UTC),
                       Coding.GSM7 if is_gsm(text) else Coding.UCS2)

    async def handle(self, kind: str, request: web.Request) -> web.Response:
        """One callback, start to answer; see the module docstring."""
        try:
            if kind not in KINDS:
                raise HookRefused(404, f"no such hook {kind!r} (dlr or mo)")
            cb = await read_callback(request)
            self.verify(request, cb)
            if kind == "dlr":
                fields = self.s.dlr_fields or {}
                reports = self.reports(cb)
                if not self._duplicate(self._key(kind, cb, fields)):
                    for report in reports:
                        self.events.on_report(report)
            else:
                fields = self.s.mo_fields or {}
                inbound = self.inbound(cb)
                if not self._duplicate(self._key(kind, cb, fields)):
                    self.events.on_mo(inbound)
        except HookRefused as exc:
            if exc.status in (401, 403):
                self.log.warning("%s callback from %s refused: %s", kind, request.remote,
                                 exc.reason)
            return web.Response(status=exc.status, text=f"ERROR {exc.reason}\n")
        reply = self.s.hook_reply
        if reply is None:
            return web.Response(text="OK\n")
        return web.Response(text=reply, content_type="application/json"
                            if reply.startswith("{") else "text/plain")


def _required(cb: Callback, fields: Mapping[str, str], what: str, empty_ok: bool = False) -> str:
    name = fields.get(what)
    if not name:
        raise HookRefused(400, f"this link has no field for {what!r} in its callbacks")
    value = cb.get(name)
    if value is None or (not value and not empty_ok):
        raise HookRefused(400, f"{name}: missing")
    return value

