"""HTTP ingress (aiohttp server): /send, Kannel's /cgi-bin/sendsms, the JSON API,
health and metrics.

Protocol apart from policy (STYLE §6): the handlers here parse and check HTTP
input and render answers; numbers, segmenting and every other SMS rule live
behind the `submit` function, which raises `SubmitError(field, reason, kind)`
and returns only after the message is committed. Every refusal is one line
naming the field: ``ERROR <field>: <reason>`` as text, or
``{"error": {"field": ..., "reason": ...}}`` as JSON.

The hot path (5,000-10,000 submissions/s on 2 cores) is: one middleware
(cached address check, and with accounts a cached credential check), one
handler that reads parameters once, one `submit`, one response built from
bytes. Nothing is logged per request; run the server with ``access_log=None``.
"""

from __future__ import annotations

import codecs
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from omnigate.api import openapi
from omnigate.api.auth import Authenticator, credentials
from omnigate.api.webhooks import PREFIX as HOOKS_PREFIX
from omnigate.api.webhooks import add_hooks
from omnigate.config import AccountConfig, HttpConfig
from omnigate.metrics import Metrics
from omnigate.model import Accepted, Origin, Status, Submit, SubmitError, SubmitRequest
from omnigate.web import PREFIX as WEB_PREFIX

log = logging.getLogger(__name__)

# SubmitError.kind -> HTTP status. An unknown kind is the client's fault: 400.
_STATUS_BY_KIND = {
    "invalid": 400,
    "auth": 401,
    "payment": 402,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "quota": 429,
    "unavailable": 503,
}
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Basic realm="omnigate"'}

LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 1000
# A client reference is an opaque idempotency key; 255 fits any store column
# type we use (VARCHAR(255)) and every client id scheme we know of.
CLIENT_REF_MAX = 255
# Store ids and priorities are 64-bit / 32-bit signed integers.
_ID_MAX = 2**63 - 1
_PRIORITY_RANGE = (-(2**31), 2**31 - 1)
# How much of a client-supplied word (a charset name, an unknown field) we echo.
_ECHO_MAX = 40

# Paths that need only the client network, never credentials (probes, scrapers).
_NETWORK_ONLY = frozenset({"/healthz", "/metrics"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_JSON_FIELDS = frozenset(
    {"to", "text", "from", "flash", "validity", "priority", "schedule_at", "client_ref",
     "dlr_url", "dlr_mask"})
_STATUS_WORDS = frozenset(s.value for s in Status)
_RECIPIENT_SEPARATORS = re.compile(r"[\s,]+")  # Kannel's '+' arrives as a space
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})

KANNEL_ACCEPTED = "0: Accepted for delivery"  # Kannel smsbox's answer, with status 202

_ACCOUNT: Any = (web.RequestKey("account", str) if hasattr(web, "RequestKey")
                 else "omnigate.account")
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)


class MessageReader(Protocol):
    """What the API reads messages through (the store implements it)."""

    async def get_message(self, id: int) -> dict | None:
        """{"id", "to", "from", "text", "status", "parts", "created_at", "updated_at",
        "error", "events": [{"at", "status", "link", "node", "reason"}]} or None."""

    async def list_messages(self, *, status: str | None, to: str | None,
                            since: datetime | None, limit: int, account: str | None = None,
                            link: str | None = None, text: str | None = None) -> list[dict]:
        """The same dicts without "events", newest first; `to` as the client gave it."""

    async def list_inbound(self, *, limit: int, sender: str | None,
                           status: str | None) -> list[dict]:
        """Inbound messages, newest first: reference, from, to, text, parts, routing."""

    async def get_inbound(self, reference: str) -> dict | None:
        """One inbound message by its tracking reference."""


_INBOUND_STATUSES = ("received", "delivered", "partly", "failed", "unrouted")

# (method, path, handler attribute): the one list of routes; openapi.py documents it
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/send", "send"),
    ("POST", "/send", "send"),
    ("GET", "/cgi-bin/sendsms", "sendsms"),
    ("POST", "/cgi-bin/sendsms", "sendsms"),
    ("POST", "/api/v1/messages", "post_message"),
    ("GET", "/api/v1/messages", "list_messages"),
    ("GET", "/api/v1/messages/{id}", "get_message"),
    ("GET", "/api/v1/inbound", "list_inbound"),
    ("GET", "/api/v1/inbound/{reference}", "get_inbound"),
    ("GET", "/api/v1/links", "get_links"),
    ("GET", "/api/v1/cluster", "get_cluster"),
    ("GET", "/api/v1/openapi.json", "get_openapi"),
    ("GET", "/healthz", "healthz"),
    ("GET", "/metrics", "get_metrics"),
)


def build_app(*, config: HttpConfig, accounts: list[AccountConfig], submit: Submit,
              reader: MessageReader, links: Callable[[], list[dict]],
              health: Callable[[], dict], metrics: Metrics, version: str,
              cluster: Callable[[], Awaitable[dict]] | None = None,
              hooks: Mapping[str, Any] | None = None) -> web.Application:
    """The aiohttp application; the caller runs it (preferably with access_log=None).
    `hooks`: links by name whose provider callbacks are served under /hooks/."""
    auth = Authenticator(config.allow, accounts)
    api = _Api(config, auth.open, submit, reader, links, health, metrics, version, cluster)
    app = web.Application(client_max_size=config.max_body,
                          middlewares=[_gate(auth, config.max_body)])
    app[AUTHENTICATOR] = auth
    for method, path, name in ROUTES:
        app.router.add_route(method, path, getattr(api, name))
    if hooks is not None:
        add_hooks(app, hooks)
    return app


# -- the middleware: network, size, credentials, and every refusal's rendering -


def _gate(auth: Authenticator, max_body: int) -> Callable[..., Awaitable[web.StreamResponse]]:
    too_large = f"larger than {max_body} bytes"

    @web.middleware
    async def gate(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
        if request.path.startswith(HOOKS_PREFIX):
            return await handler(request)  # each link checks its own callers (api/webhooks.py)
        try:
            address = request.remote
            auth.check_address(address)
            length = request.content_length
            if length is not None and length > max_body:
                raise SubmitError("body", too_large, "too_large")
            if (not auth.open and request.path not in _NETWORK_ONLY
                    and not request.path.startswith(WEB_PREFIX)):  # pages: session cookie
                request[_ACCOUNT] = await auth.authenticate(await credentials(request), address)
            return await handler(request)
        except SubmitError as e:
            return _refusal(request, e)
        except web.HTTPRequestEntityTooLarge as e:
            # aiohttp's own 413 (client_max_size, or too many form fields)
            reason = "too many form fields" if "field" in (e.text or "") else too_large
            return _error(request, "body", reason, 413)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            if e.status == 405:
                allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
                return _error(request, "method", f"{request.method} is not allowed here", 405,
                              allow)
            if e.status == 404:
                return _error(request, "path", "no such endpoint", 404)
            return _error(request, "request", (e.reason or "bad request").lower(), e.status)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            return _error(request, "server", "internal error", 500)

    return gate


def _refusal(request: web.Request, e: SubmitError, *, as_json: bool | None = None,
             field: str | None = None) -> web.Response:
    status = _STATUS_BY_KIND.get(e.kind, 400)
    return _error(request, field or e.field, e.reason, status,
                  _WWW_AUTHENTICATE if status == 401 else None, as_json=as_json)


def _error(request: web.Request, field: str, reason: str, status: int,
           headers: Mapping[str, str] | None = None, *, as_json: bool | None = None
           ) -> web.Response:
    field, reason = _one_line(field), _one_line(reason)
    if as_json is None:
        as_json = _wants_json(request)
    if as_json:
        body = orjson.dumps({"error": {"field": field, "reason": reason}})
        return web.Response(body=body, status=status, content_type="application/json",
                            headers=headers)
    return web.Response(text=f"ERROR {field}: {reason}\n", status=status, headers=headers)


def _one_line(s: str) -> str:
    return " ".join(str(s).split()) if ("\n" in s or "\r" in s) else s


def _wants_json(request: web.Request) -> bool:
    path = request.path
    if path.startswith("/api/") or path == "/healthz":
        return True
    if path.startswith("/cgi-bin/"):
        return False
    return "application/json" in request.headers.get("Accept", "") or \
        request.query.get("format") == "json"


# -- parameters ----------------------------------------------------------------


class _Params:
    """Form body first, then query: one `get` for both ways of sending a form."""

    __slots__ = ("_form", "_query")

    def __init__(self, query: MultiDictProxy[str], form: MultiDictProxy[Any] | None = None):
        self._query = query
        self._form = form

    def get(self, name: str) -> str | None:
        if self._form is not None:
            value = self._form.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise SubmitError(name, "must be a text field, not a file")
                return value
        return self._query.get(name)


async def _params(request: web.Request) -> _Params:
    if request.method == "POST" and request.content_type in _FORM_TYPES:
        try:
            form = await request.post()
        except ValueError:  # undecodable bytes, broken multipart
            raise SubmitError("body", "malformed form data") from None
        return _Params(request.query, form)
    return _Params(request.query)


def _recipients(value: str | None, field: str, most: int) -> list[str]:
    if not value:
        raise SubmitError(field, "missing")
    to = [n for n in _RECIPIENT_SEPARATORS.split(value) if n]
    if not to:
        raise SubmitError(field, "missing")
    if len(to) > most:
        raise SubmitError(field, f"too many recipients ({len(to)}, at most {most})")
    return to


def _flag(params: _Params, name: str) -> bool:
    value = params.get(name)
    if value is None:
        return False
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SubmitError(name, "must be 1 or 0")


def _int_param(params: _Params, name: str, lo: int, hi: int) -> int | None:
    value = params.get(name)
    if value is None or not value.strip():
        return None
    try:
        n = int(value)
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise SubmitError(name, f"must be a whole number from {lo} to {hi}")
    return n


@functools.lru_cache(maxsize=64)
def _codec(charset: str) -> str | None:
    """Python's codec name for an HTTP/Kannel charset name, None when unknown."""
    try:
        return codecs.lookup(charset.strip()).name
    except (LookupError, ValueError):
        return None


_ASCII = bytes(range(128))


@functools.lru_cache(maxsize=64)
def _ascii_compatible(codec: str) -> bool:
    """True when ASCII bytes mean the same characters in `codec` (Latin-1, CP1252, ...)."""
    try:
        return _ASCII.decode(codec) == _ASCII.decode("ascii")
    except UnicodeDecodeError:
        return False


def _raw_value(raw: bytes, name: bytes) -> bytes | None:
    """Percent-decoded bytes of the first `name` in a query string or urlencoded body."""
    for pair in raw.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == name:
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


async def _raw_text(request: web.Request) -> bytes | None:
    """The `text` parameter's bytes as sent, before anyone decoded them as UTF-8."""
    content_type = request.content_type
    if request.method == "POST" and content_type == "application/x-www-form-urlencoded":
        value = _raw_value(await request.read(), b"text")
        if value is not None:
            return value
    elif request.method == "POST" and content_type == "multipart/form-data":
        return None  # each part carries its own charset, aiohttp applied it
    raw_query = request.rel_url.raw_query_string.encode("utf-8", "surrogateescape")
    return _raw_value(raw_query, b"text")


def _limit(query: MultiDictProxy[str]) -> int:
    limit = LIST_LIMIT_DEFAULT
    if (value := query.get("limit")) is not None:
        try:
            limit = int(value)
        except ValueError:
            limit = 0
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise SubmitError("limit", f"must be a whole number from 1 to {LIST_LIMIT_MAX}")
    return limit


def _parse_time(value: str, field: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise SubmitError(field, "not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise SubmitError(field, "needs a timezone (Z or +hh:mm)")
    return t


# -- rendering ---------------------------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _accepted_json(accepted: list[Accepted]) -> bytes:
    return orjson.dumps({"messages": [
        {"id": a.id, "to": a.to, "status": a.status, "parts": a.parts} for a in accepted]})


# -- handlers ----------------------------------------------------------------


class _Api:
    def __init__(self, config: HttpConfig, open: bool, submit: Submit, reader: MessageReader,
                 links: Callable[[], list[dict]], health: Callable[[], dict], metrics: Metrics,
                 version: str, cluster: Callable[[], Awaitable[dict]] | None) -> None:
        self._open = open  # no accounts: requests carry no account name
        self.max_recipients = config.max_recipients
        self.submit = submit
        self.reader = reader
        self.links = links
        self.cluster = cluster
        self.health = health
        self.metrics = metrics
        self._rejected = metrics.rejected.labels(origin=Origin.HTTP.value)
        self._openapi = orjson.dumps(openapi.document(version))

    def _account(self, request: web.Request) -> str | None:
        return None if self._open else request[_ACCOUNT]

    # /send: our product sheet's form -----------------------------------------

    async def send(self, request: web.Request) -> web.Response:
        as_json = "application/json" in request.headers.get("Accept", "")
        try:
            params = await _params(request)
            as_json = as_json or params.get("format") == "json"
            try:
                submission = SubmitRequest(
                    to=_recipients(params.get("numbers"), "numbers", self.max_recipients),
                    text=_required(params.get("text"), "text"),
                    origin=Origin.HTTP,
                    sender=params.get("from") or None,
                    account=self._account(request),
                    client=request.remote,
                    flash=_flag(params, "flash"),
                )
            except SubmitError:
                self._rejected.inc()
                raise
            accepted = await self.submit(submission)
        except SubmitError as e:
            # the form calls the recipients `numbers`; the core calls them `to`
            return _refusal(request, e, as_json=as_json,
                           field="numbers" if e.field == "to" else None)
        if as_json:
            return web.Response(body=_accepted_json(accepted), content_type="application/json")
        lines = "".join(f"OK {a.id} {a.to} {a.parts}\n" for a in accepted)
        return web.Response(text=lines)

    # /cgi-bin/sendsms: Kannel smsbox compatible --------------------------------

    async def sendsms(self, request: web.Request) -> web.Response:
        params = await _params(request)
        try:
            submission = await self._kannel_request(request, params)
        except SubmitError:
            self._rejected.inc()
            raise
        await self.submit(submission)
        return web.Response(text=KANNEL_ACCEPTED, status=202)

    async def _kannel_request(self, request: web.Request, params: _Params) -> SubmitRequest:
        to = _recipients(params.get("to"), "to", self.max_recipients)
        text = _required(params.get("text"), "text")
        charset = params.get("charset")
        codec = "utf-8"
        if charset:
            codec = _codec(charset)
            if codec is None:
                raise SubmitError("charset", f"unknown charset {charset[:_ECHO_MAX]!r}")
        # aiohttp decoded the text as UTF-8 (U+FFFD where that failed): decode
        # again from the bytes the client sent, in the charset it named. Pure
        # ASCII came from ASCII bytes and reads the same in any ASCII-based charset.
        if "\ufffd" in text or (codec != "utf-8" and not (
                text.isascii() and _ascii_compatible(codec))):
            raw = await _raw_text(request)
            if raw is not None:
                try:
                    text = raw.decode(codec)
                except UnicodeDecodeError:
                    raise SubmitError("text", f"not valid {charset or 'UTF-8'}") from None
        # coding 0 = 7-bit, 1 = 8-bit, 2 = UCS-2. 8-bit data is not supported yet: the
        # core then picks GSM 03.38 or UCS-2 from the text, as for 0.
        coding = _int_param(params, "coding", 0, 2)
        mclass = _int_param(params, "mclass", 0, 3)
        validity = _int_param(params, "validity", 1, 10 * 365 * 24 * 60)  # minutes
        dlr_mask = _int_param(params, "dlr-mask", 0, 255)
        # smsc (a link name) is accepted and ignored for now.
        return SubmitRequest(
            to=to,
            text=text,
            origin=Origin.HTTP,
            sender=params.get("from") or None,
            account=self._account(request),
            client=request.remote,
            flash=mclass == 0,
            validity=validity * 60.0 if validity is not None else None,
            # Kannel: a report is asked for when dlr-mask has 1 (delivered) or 2 (failed)
            report=True if dlr_mask is None else bool(dlr_mask & 3),
            ucs2=coding == 2,
            dlr_url=params.get("dlr-url") or None,
            dlr_mask=dlr_mask,
        )

    # /api/v1: JSON -------------------------------------------------------------

    async def post_message(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            submission = self._json_request(body, self._account(request))
            submission.client = request.remote
        except SubmitError:
            self._rejected.inc()
            raise
        accepted = await self.submit(submission)
        return web.Response(body=_accepted_json(accepted), status=202,
                            content_type="application/json")

    def _json_request(self, body: bytes, account: str | None) -> SubmitRequest:
        if not body:
            raise SubmitError("body", "missing")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SubmitError("body", "not valid JSON") from None
        if not isinstance(data, dict):
            raise SubmitError("body", "must be a JSON object")
        for key in data:
            if key not in _JSON_FIELDS:
                raise SubmitError(key[:_ECHO_MAX], "unknown field")

        to = data.get("to")
        if isinstance(to, str):
            to = _recipients(to, "to", self.max_recipients)
        elif isinstance(to, list) and all(isinstance(n, str) for n in to):
            to = [n.strip() for n in to if n.strip()]
            if not to:
                raise SubmitError("to", "missing")
            if len(to) > self.max_recipients:
                raise SubmitError(
                    "to", f"too many recipients ({len(to)}, at most {self.max_recipients})")
        elif to is None:
            raise SubmitError("to", "missing")
        else:
            raise SubmitError("to", "must be a string or a list of strings")

        text = data.get("text")
        if text is None:
            raise SubmitError("text", "missing")
        if not isinstance(text, str):
            raise SubmitError("text", "must be a string")
        sender = data.get("from")
        if sender is not None and not isinstance(sender, str):
            raise SubmitError("from", "must be a string")
        flash = data.get("flash", False)
        if not isinstance(flash, bool):
            raise SubmitError("flash", "must be true or false")
        validity = data.get("validity")
        if validity is not None and (isinstance(validity, bool)
                                     or not isinstance(validity, int | float) or validity <= 0):
            raise SubmitError("validity", "must be a positive number of seconds")
        priority = data.get("priority", 0)
        if priority is None:
            priority = 0
        lo, hi = _PRIORITY_RANGE
        if isinstance(priority, bool) or not isinstance(priority, int) or not lo <= priority <= hi:
            raise SubmitError("priority", "must be a whole number")
        schedule_at = data.get("schedule_at")
        if schedule_at is not None:
            if not isinstance(schedule_at, str):
                raise SubmitError("schedule_at", "must be an ISO 8601 string")
            schedule_at = _parse_time(schedule_at, "schedule_at")
        client_ref = data.get("client_ref")
        if client_ref is not None and (not isinstance(client_ref, str) or not client_ref
                                       or len(client_ref) > CLIENT_REF_MAX):
            raise SubmitError("client_ref", f"must be a string of 1 to {CLIENT_REF_MAX} characters")
        return SubmitRequest(
            to=to,
            text=text,
            origin=Origin.HTTP,
            sender=sender or None,
            account=account,
            flash=flash,
            priority=priority,
            validity=float(validity) if validity is not None else None,
            schedule_at=schedule_at,
            client_ref=client_ref,
            **_json_dlr(data),
        )

    async def get_message(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not (raw.isascii() and raw.isdigit()):
            raise SubmitError("id", "not a message id")
        id = int(raw)
        message = await self.reader.get_message(id) if id <= _ID_MAX else None
        if message is None:
            raise SubmitError("id", f"no message {id}", "not_found")
        return _json(message)

    async def list_messages(self, request: web.Request) -> web.Response:
        query = request.query
        status = query.get("status") or None
        if status is not None and status not in _STATUS_WORDS:
            raise SubmitError("status", f"unknown status {status[:_ECHO_MAX]!r}")
        to = (query.get("to") or "").strip() or None
        since = None
        if value := query.get("since"):
            # an unencoded '+' of '+02:00' arrives as a space
            since = _parse_time(value.strip().replace(" ", "+"), "since")
        rows = await self.reader.list_messages(status=status, to=to, since=since,
                                               limit=_limit(query))
        return _json({"messages": rows})

    async def list_inbound(self, request: web.Request) -> web.Response:
        query = request.query
        status = query.get("status") or None
        if status is not None and status not in _INBOUND_STATUSES:
            raise SubmitError("status", f"unknown status {status[:_ECHO_MAX]!r} "
                                        f"(one of {', '.join(_INBOUND_STATUSES)})")
        sender = (query.get("from") or "").strip().replace(" ", "+") or None
        rows = await self.reader.list_inbound(limit=_limit(query), sender=sender, status=status)
        return _json({"inbound": rows})

    async def get_inbound(self, request: web.Request) -> web.Response:
        reference = request.match_info["reference"]
        found = await self.reader.get_inbound(reference[:40])
        if found is None:
            raise SubmitError("reference", f"no inbound message {reference[:_ECHO_MAX]!r}",
                              "not_found")
        return _json(found)

    async def get_links(self, request: web.Request) -> web.Response:
        return _json({"links": self.links()})

    async def get_cluster(self, request: web.Request) -> web.Response:
        if self.cluster is None:
            health = self.health()
            return _json({"node": health["node"], "clustered": False, "nodes": []})
        return _json(await self.cluster())

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")

    # operations -------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        health = self.health()
        return _json(health, 200 if health.get("status") == "ok" else 503)

    async def get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def _json_dlr(data: dict[str, Any]) -> dict[str, Any]:
    """Kannel-style status callbacks asked for in JSON (`delivery/dlr_url.py`): how one
    omnigate relays to another and hears the status back (HTTP link, profile omnigate)."""
    url, mask = data.get("dlr_url"), data.get("dlr_mask")
    if url is None and mask is None:
        return {}
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise SubmitError("dlr_url", "must be an http:// or https:// URL")
    if isinstance(mask, bool) or not isinstance(mask, int) or not 1 <= mask <= 31:
        raise SubmitError("dlr_mask", "must be a whole number 1-31 (Kannel dlr-mask bits)")
    return {"dlr_url": url, "dlr_mask": mask, "report": bool(mask & 3)}


def _required(value: str | None, field: str) -> str:
    if value is None:
        raise SubmitError(field, "missing")
    return value
