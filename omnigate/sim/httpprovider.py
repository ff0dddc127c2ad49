"""An SMS provider with an HTTP API, for the HTTP link's tests and for trying a config.

It speaks three dialects at once, each on the path its real counterpart uses:

- generic JSON: `POST /send` with the `generic-json` profile's body, answers
  `{"id": ...}`; `GET /status` is the probe (checks credentials);
- websms: `POST /rest/smsmessaging/text` (recipientAddressList, messageContent, ...),
  answers `{"statusCode": 2000, "transferId": ...}`;
- Kannel: `GET|POST /cgi-bin/sendsms` (username/password, to, text, udh, coding,
  dlr-mask, dlr-url), answers `202 0: Accepted for delivery`.

Credentials: with `password` set, HTTP Basic (`user`/`password`), a bearer token
equal to the password, or Kannel's username/password fields; otherwise 401.
Faults, changeable at run time like the SMSC simulators' (`set_faults`):
`throttle_every` (429 with `Retry-After: retry_after`), `fail_every` (400,
permanent), `error_every` (500), `response_delay`, `no_response` (never answers),
`drop_after` (after that many answered requests, every connection is cut). Each
accepted recipient is recorded; with `dlr`, a delivery report is posted (websms and
generic: JSON; Kannel: the dlr-url with its escapes filled) `dlr_delay` seconds
later. `inject_mo` posts an inbound SMS to `mo_url` in the chosen dialect; with
`hmac_secret` every callback body is signed (hex HMAC-SHA256 in X-Signature).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from omnigate.sim.base import (
    SimulatorError,
    add_common_arguments,
    cli_main,
    common_options,
    serve,
)

log = logging.getLogger("omnigate.sim.http")

Dialect = Literal["generic", "websms", "kannel"]
FAULTS: dict[str, type] = {
    "throttle_every": int, "fail_every": int, "error_every": int, "drop_after": int,
    "retry_after": float, "response_delay": float, "no_response": bool, "dlr": bool,
    "dlr_delay": float, "dlr_status": str,
}
_KANNEL_EVENT = {"delivered": "1", "undelivered": "2", "expired": "2"}


@dataclass(slots=True)
class RecordedSubmit:
    """One recipient of one accepted request."""

    dialect: str
    destination: str
    source: str
    text: str
    id: str
    dlr_url: str | None
    udh: str = ""
    coding: int = 0
    flash: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class HttpProviderSimulator:
    """See the module docstring; `async with HttpProviderSimulator() as sim:`."""

    NAME: ClassVar[str] = "HTTP provider simulator"
    UNITS: ClassVar[str] = "messages"
    DLR_STATUSES: ClassVar[tuple[str, ...]] = ("delivered", "undelivered", "expired")
    DLR_STATUS_DEFAULT: ClassVar[str] = "delivered"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, user: str | None = None,
                 password: str | None = None, dlr: bool = False, dlr_delay: float = 0.0,
                 dlr_status: str | None = None, throttle_every: int = 0, fail_every: int = 0,
                 error_every: int = 0, retry_after: float = 1.0, drop_after: int = 0,
                 response_delay: float = 0.0, no_response: bool = False,
                 hmac_secret: str | None = None, keep: int = 100_000) -> None:
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.dlr, self.dlr_delay = dlr, dlr_delay
        self.dlr_status = dlr_status or self.DLR_STATUS_DEFAULT
        if self.dlr_status not in self.DLR_STATUSES:
            raise ValueError(f"dlr_status must be one of {', '.join(self.DLR_STATUSES)}")
        self.throttle_every, self.fail_every, self.error_every = throttle_every, fail_every, error_every
        self.retry_after, self.drop_after = retry_after, drop_after
        self.response_delay, self.no_response = response_delay, no_response
        self.hmac_secret = hmac_secret
        self.mo_url: str | None = None  # where inject_mo posts
        self.mo_dialect: Dialect = "generic"
        self.submits: deque[RecordedSubmit] = deque(maxlen=keep)
        self.submit_count = 0  # recipients of requests received (answered or not)
        self.seen: deque[tuple[str, str, dict[str, str]]] = deque(maxlen=1000)
        self.concurrent = self.peak_concurrent = 0  # requests being answered
        self.received_count = 0  # requests that passed the credentials (fault counter)
        self.throttled_count = self.failed_count = self.errored_count = 0
        self.dlr_count = self.mo_count = 0
        self.callback_answers: list[int] = []  # HTTP status of each callback we made
        self._answered = 0  # since the last drop (drop_after)
        self._ids = itertools.count(1)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hang: asyncio.Future[None] | None = None

    # -- lifecycle ----------------------------------------------------------------

    @web.middleware
    async def _note(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every request's method, path with query, and headers; how many at once."""
        self.seen.append((request.method, request.path_qs, dict(request.headers)))
        self.concurrent += 1
        self.peak_concurrent = max(self.peak_concurrent, self.concurrent)
        try:
            return await handler(request)
        finally:
            self.concurrent -= 1

    async def start(self) -> None:
        app = web.Application(middlewares=[self._note])
        app.router.add_get("/status", self._status)
        app.router.add_post("/send", self._generic)
        app.router.add_post("/rest/smsmessaging/text", self._websms)
        app.router.add_route("*", "/cgi-bin/sendsms", self._kannel)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._hang = asyncio.get_running_loop().create_future()
        log.info("%s listening on %s:%d", self.NAME, self.host, self.port)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._hang is not None and not self._hang.done():
            self._hang.cancel()
        if self._runner is not None:
            await self.drop_connections()
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(SimulatorError("simulator stopped"))

    async def __aenter__(self) -> HttpProviderSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def drop_connections(self) -> None:
        """Cut every client connection at once (RST), like a network failure."""
        server = self._runner.server if self._runner else None
        for handler in list(server.connections if server else []):
            if handler.transport is not None:
                handler.transport.abort()
        self._answered = 0
        await asyncio.sleep(0)

    # -- faults, counters ---------------------------------------------------------

    def faults(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FAULTS}

    def set_faults(self, **values: Any) -> None:
        for name, value in values.items():
            kind = FAULTS.get(name)
            if kind is None:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            if kind is str and value not in self.DLR_STATUSES:
                raise ValueError(f"{name} must be one of {', '.join(self.DLR_STATUSES)}")
            if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)
                                         or value < 0):
                raise ValueError(f"{name} must be a number >= 0")
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
        for name, value in values.items():
            setattr(self, name, FAULTS[name](value))
        log.info("%s faults set: %s", self.NAME, values)

    def stats(self) -> dict[str, Any]:
        return {"submit_count": self.submit_count, "received_count": self.received_count,
                "throttled_count": self.throttled_count, "failed_count": self.failed_count,
                "errored_count": self.errored_count, "dlr_count": self.dlr_count,
                "mo_count": self.mo_count, "faults": self.faults()}

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Until `count` recipients were received; TimeoutError says how far it got."""
        if self.submit_count >= count:
            return
        entry = (count, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[1]
        except TimeoutError:
            raise TimeoutError(f"{self.NAME} got {self.submit_count} of {count} {self.UNITS} "
                               f"in {timeout}s") from None
        finally:
            self._waiters.remove(entry)

    # -- the request path ---------------------------------------------------------

    def _authorised(self, request: web.Request, fields: dict[str, str] | None = None) -> bool:
        if self.password is None:
            return True
        if fields is not None and "password" in fields:
            return ((self.user is None or fields.get("username") == self.user)
                    and fields["password"] == self.password)
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return hmac.compare_digest(header[7:], self.password)
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == (self.user or user) and password == self.password
        return False

    async def _fault(self, request: web.Request) -> web.Response | None:
        """The injected fault for this request, if any (after its credentials passed)."""
        self.received_count += 1
        n = self.received_count
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        if self.throttle_every and n % self.throttle_every == 0:
            self.throttled_count += 1
            return web.json_response({"error": "too many requests"}, status=429,
                                     headers={"Retry-After": f"{self.retry_after:g}"})
        if self.fail_every and n % self.fail_every == 0:
            self.failed_count += 1
            return web.json_response({"error": "invalid destination address"}, status=400)
        if self.error_every and n % self.error_every == 0:
            self.errored_count += 1
            return web.json_response({"error": "internal error"}, status=500)
        return None

    async def _accept(self, records: list[RecordedSubmit], answer: web.Response) -> web.Response:
        """Record, then answer (or hang, or cut every connection after this answer)."""
        for rec in records:
            self.submits.append(rec)
        self.submit_count += len(records)
        for want, fut in self._waiters:
            if self.submit_count >= want and not fut.done():
                fut.set_result(None)
        if self.no_response or (self.drop_after and self._answered >= self.drop_after):
            assert self._hang is not None
            await asyncio.shield(self._hang)  # until stop(); a drop cuts the connection
        self._answered += 1
        if self.drop_after and self._answered >= self.drop_after:
            log.info("%s drop_after=%d reached; cutting connections", self.NAME, self.drop_after)
            asyncio.get_running_loop().call_later(0.05, self._spawn, self.drop_connections())
        if self.dlr:
            for rec in records:
                if rec.dlr_url:
                    asyncio.get_running_loop().call_later(
                        self.dlr_delay, self._spawn, self._post_dlr(rec, self.dlr_status))
        return answer

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"status": "ok"})

    async def _json(self, request: web.Request) -> Any:
        try:
            return orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise web.HTTPBadRequest(text='{"error": "body is not JSON"}',
                                     content_type="application/json") from None

    async def _generic(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await self._json(request)
        if not isinstance(body, dict) or not body.get("to") or "text" not in body:
            return web.json_response({"error": "to and text are required"}, status=400)
        fault = await self._fault(request)
        if fault is not None:
            return fault
        id = f"g{next(self._ids)}"
        rec = RecordedSubmit("generic", str(body["to"]), str(body.get("from") or ""),
                             str(body["text"]), id, body.get("dlr_url"),
                             flash=bool(body.get("flash")))
        return await self._accept([rec], web.json_response({"id": id}))

    async def _websms(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"statusCode": 4001, "statusMessage": "invalid credentials"},
                                     status=401)
        body = await self._json(request)
        recipients = body.get("recipientAddressList") if isinstance(body, dict) else None
        if not recipients or not isinstance(body.get("messageContent"), str):
            return web.json_response({"statusCode": 4002, "statusMessage":
                                      "recipientAddressList and messageContent are required"})
        fault = await self._fault(request)
        if fault is not None:
            return fault
        transfer = f"w{next(self._ids):012d}"
        recs = [RecordedSubmit("websms", str(r), str(body.get("senderAddress") or ""),
                               body["messageContent"], f"{transfer}:{r}",
                               body.get("notificationCallbackUrl"),
                               flash=bool(body.get("sendAsFlashSms")))
                for r in recipients]
        return await self._accept(recs, web.json_response(
            {"statusCode": 2000, "statusMessage": "OK", "transferId": transfer,
             "clientMessageId": body.get("clientMessageId")}))

    async def _kannel(self, request: web.Request) -> web.Response:
        fields = dict(request.query)
        if request.method == "POST":
            fields.update({k: str(v) for k, v in (await request.post()).items()})
        if not self._authorised(request, fields):
            return web.Response(status=403, text="Authorization failed for sendsms")
        if not fields.get("to") or "text" not in fields:
            return web.Response(status=400, text="Missing receiver number or text")
        fault = await self._fault(request)
        if fault is not None:
            return fault
        id = f"k{next(self._ids)}"
        dlr_url = fields.get("dlr-url") if int(fields.get("dlr-mask") or 0) & 3 else None
        recs = [RecordedSubmit("kannel", to.lstrip("+"), fields.get("from", ""), fields["text"],
                               id, dlr_url, udh=fields.get("udh", ""),
                               coding=int(fields.get("coding") or 0),
                               flash=fields.get("mclass") == "0")
                for to in fields["to"].split()]
        return await self._accept(recs, web.Response(status=202, text="0: Accepted for delivery"))

    # -- callbacks ----------------------------------------------------------------

    async def _callback(self, method: str, url: str, body: bytes | None) -> int:
        assert self._client is not None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.hmac_secret is not None:
            headers["X-Signature"] = hmac.new(self.hmac_secret.encode(), body or b"",
                                              hashlib.sha256).hexdigest()
        try:
            async with self._client.request(method, url, data=body, headers=headers) as resp:
                await resp.read()
                self.callback_answers.append(resp.status)
                return resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("%s callback to %s failed: %s", self.NAME, url.split("?")[0], exc)
            return 0

    async def _post_dlr(self, rec: RecordedSubmit, status: str) -> None:
        assert rec.dlr_url is not None
        if rec.dialect == "kannel":
            event = _KANNEL_EVENT[status]
            url = (rec.dlr_url.replace("%d", event).replace("%A", quote(f"id:{rec.id} stat:{status}"))
                   .replace("%p", rec.destination))
            answer = await self._callback("GET", url, None)
        elif rec.dialect == "websms":
            transfer, _, recipient = rec.id.partition(":")
            answer = await self._callback("POST", rec.dlr_url, orjson.dumps({
                "messageType": "deliveryReport", "notificationId": f"n{next(self._ids)}",
                "transferId": transfer, "recipientAddress": recipient,
                "deliveryReportMessageStatus": status, "deliveredAs": "sms"}))
        else:
            answer = await self._callback("POST", rec.dlr_url, orjson.dumps(
                {"id": rec.id, "status": status, "to": rec.destination}))
        if 200 <= answer < 300:
            self.dlr_count += 1

    async def inject_mo(self, sender: str, recipient: str, text: str) -> None:
        """Post an inbound SMS to `mo_url` in `mo_dialect`; SimulatorError if refused."""
        if self.mo_url is None:
            raise SimulatorError("no mo_url set: where should the MO go?")
        status = await self.post_mo(self.mo_url, sender, recipient, text, self.mo_dialect)
        if not 200 <= status < 300:
            raise SimulatorError(f"MO refused with HTTP {status}")

    async def post_mo(self, url: str, sender: str, recipient: str, text: str,
                      dialect: Dialect = "generic", key: str | None = None) -> int:
        """One MO callback; the HTTP status of the answer (0 if none). `key` is the
        provider's notification id (a resend carries the same)."""
        key = key or f"mo{next(self._ids)}"
        if dialect == "kannel":
            sep = "&" if "?" in url else "?"
            status = await self._callback("GET", f"{url}{sep}from={quote(sender)}"
                                          f"&to={quote(recipient)}&text={quote(text)}", None)
        elif dialect == "websms":
            status = await self._callback("POST", url, orjson.dumps({
                "messageType": "text", "notificationId": key, "senderAddress": sender,
                "recipientAddress": recipient, "textMessageContent": text,
                "senderAddressType": "international", "recipientAddressType": "international"}))
        else:
            status = await self._callback("POST", url, orjson.dumps(
                {"id": key, "from": sender, "to": recipient, "text": text}))
        if 200 <= status < 300:
            self.mo_count += 1
        return status


# -- command line: `omnigate sim http` -------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(
        parser, HttpProviderSimulator, port=8880, peers="HTTP links",  # type: ignore[arg-type]
        logins="requests", unit="request", response="answer",
        throttle="429 Too Many Requests (with Retry-After)", fail="400 (permanent)",
        dlr="post delivery reports to each request's callback URL",
        dlr_delay="seconds between the answer and the report",
        dlr_status="what reports say (default delivered)")
    parser.add_argument("--user", help="HTTP Basic / Kannel username (with --password)")
    parser.add_argument("--error-every", type=int, default=0, metavar="N",
                        help="answer every Nth request with 500 (temporary)")
    parser.add_argument("--retry-after", type=float, default=1.0, metavar="S",
                        help="Retry-After of the 429 answers")
    parser.add_argument("--hmac-secret", help="sign callbacks (hex HMAC-SHA256 in X-Signature)")
    parser.add_argument("--mo-url", help="where MO injected through --control is posted")
    parser.add_argument("--mo-dialect", choices=["generic", "websms", "kannel"],
                        default="generic", help="how MO callbacks look")


def simulator_from_args(args: argparse.Namespace) -> HttpProviderSimulator:
    options = dict(common_options(args))
    options.pop("record", None)
    sim = HttpProviderSimulator(user=args.user, error_every=args.error_every,
                                retry_after=args.retry_after, hmac_secret=args.hmac_secret,
                                **options)
    sim.mo_url, sim.mo_dialect = args.mo_url, args.mo_dialect
    return sim


async def run(args: argparse.Namespace) -> None:
    """Entry point for `omnigate sim http`; runs until cancelled."""
    await serve(simulator_from_args(args), args.control)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    """`python -m omnigate.sim.httpprovider`, for use without the omnigate command."""
    cli_main("python -m omnigate.sim.httpprovider", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    main()
