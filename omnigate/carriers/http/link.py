"""The HTTP link: one configurable client for SMS providers with an HTTP API.

In the shape of Kannel's `smsc_http.c` (STYLE §5): one generic link, and providers as
data (`profiles.py`). Parts wait in a queue; up to `window` requests are in flight on
an aiohttp connection pool of that size, each carrying one message (or one part, with
`concat = "parts"`) to up to `batch` recipients with the same text. One task per
request, not per part: the request needs its own coroutine anyway.

How an answer is judged (each part of the request reported exactly once):

- accepted: the status is in `success_status` (any 2xx if unset) and the body passes
  `success_regex` / `success_pointer`; the carrier id comes from `id_pointer` or
  `id_regex` (our own part id when the provider gives none, e.g. Kannel);
- 429: THROTTLED, sending pauses for `Retry-After` (seconds or an HTTP date);
- 401/403: the credentials are refused: parts back TEMPORARY, the link goes DOWN and
  probes until they are taken again;
- other 4xx, or a 2xx failing the test: PERMANENT, with the provider's words;
- 5xx: TEMPORARY; a connection failure or timeout: TEMPORARY, and `down_after` of
  them in a row take the link DOWN with everything held (contract rule 3).

While DOWN the link probes each of `hosts` (or the URL's host) in order: a GET of
`probe_url` (which also checks the credentials) or a TCP connect, with backoff.

Long messages: with `concat = "provider"` the whole text goes once and every part is
reported with the request's outcome, as `<id>#<seq>`; with `"parts"` each part goes
alone with its UDH (`{udh}`) and has its own carrier id and report.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import math
import re
import time
from collections import deque
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import orjson
from aiohttp import web

from omnigate.carriers.base import Link, LinkConfig, LinkEvents, LinkState
from omnigate.carriers.stream import LinkFailed, backoff_delay
from omnigate.config import split_hostport
from omnigate.model import FailureKind, Part
from omnigate.routing.ratelimit import TokenBucket
from omnigate.sms.coding import Coding, decode
from omnigate.sms.segment import concat_udh

from .config import HttpConfig
from .hooks import Hooks, pointer
from .profiles import settings
from .template import render_fields, render_json, render_text

TEMPORARY = FailureKind.TEMPORARY
PERMANENT = FailureKind.PERMANENT
ANSWER_MAX = 64 * 1024  # bytes of a provider's answer we read
REASON_MAX = 200  # characters of it quoted in a failure reason
RETRY_AFTER_MAX = 3600.0  # a Retry-After beyond an hour is taken as an hour
_UP = LinkState.UP


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3: seconds or a date)."""
    if not value:
        return default
    value = value.strip()
    try:  # delay-seconds; some providers send a fraction
        seconds = float(value)
    except ValueError:
        pass
    else:
        return min(max(seconds, 0.0), RETRY_AFTER_MAX) if math.isfinite(seconds) else default
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return min(max(when.timestamp() - time.time(), 0.0), RETRY_AFTER_MAX)


def _snippet(body: bytes) -> str:
    text = body[:REASON_MAX * 2].decode("utf-8", "replace")
    return " ".join(text.split())[:REASON_MAX] or "(empty answer)"


class HttpLink(Link):
    """A carrier reached over HTTP(S); see the module docstring."""

    config_model = HttpConfig
    config: HttpConfig  # Link.__init__ checked it against config_model
    protocol = "http"

    def __init__(self, config: LinkConfig, events: LinkEvents) -> None:
        super().__init__(config, events)
        s = self.settings = settings(self.config)
        url = urlsplit(s.url or "")
        default_port = 443 if url.scheme == "https" else 80
        own = f"{url.hostname}:{url.port or default_port}"
        self._hosts = [split_hostport(h) for h in (s.hosts or [own])]
        self._batch = s.batch or 1
        self._limit = s.window * self._batch + s.queue
        self._provider_concat = s.concat != "parts"
        # The DLR names the recipient where one id stands for several (hooks.reports).
        self._ids_with_recipient = "recipient" in (s.dlr_fields or {})
        self._success = frozenset(s.success_status or ())
        self._success_re = re.compile(s.success_regex) if s.success_regex else None
        self._success_values = frozenset(s.success_values or ())
        self._id_re = re.compile(s.id_regex) if s.id_regex else None
        self.hooks = Hooks(self.name, s, events, self.log)
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._session: aiohttp.ClientSession | None = None
        self._queue: deque[Part] = deque()
        self._active: dict[asyncio.Task[None], list[Part]] = {}
        self._held = 0  # parts in _active
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Future[str] | None = None
        self._stopping = False
        self._drained: asyncio.Event | None = None
        self._pump_handle: asyncio.Handle | None = None
        self._wake: asyncio.TimerHandle | None = None
        self._wake_time = 0.0
        self._failures = 0  # connection failures and timeouts in a row
        self._throttled_until = 0.0
        self._bucket = TokenBucket(s.max_rate, burst=max(1.0, s.max_rate / 10)) \
            if s.max_rate else None
        self._peer = ""
        self._netloc = ""
        self._attempts = 0
        self._last_error = ""
        self._hook_runner: web.AppRunner | None = None
        self._closing: set[asyncio.Task[Any]] = set()

    # --- requests ------------------------------------------------------------------

    def _values(self, groups: list[list[Part]]) -> dict[str, Any]:
        """The placeholders of one request: `groups` are the parts of each recipient."""
        first = groups[0]
        p = first[0]
        if self._provider_concat:
            text = "".join(decode(q.data, q.coding) for q in first)
            seq, udh = 1, ""
        else:
            text = decode(p.data, p.coding)
            seq = p.seq
            udh = concat_udh(*p.concat).hex() if p.concat else ""
        to = [g[0].recipient for g in groups]
        validity = None
        if p.validity_until is not None:
            validity = max(1, int(p.validity_until - time.time()))
        sender = p.sender.value if p.sender is not None else None
        values: dict[str, Any] = {
            "to": to[0], "to_plus": "+" + to[0], "to_list": to, "to_csv": ",".join(to),
            "from": sender,
            "from_kind": None if p.sender is None else (
                "alphanumeric" if p.sender.ton == 5 else "international"),
            "text": text, "parts": p.total, "seq": seq,
            "ref": p.concat[0] if p.concat else 0, "udh": udh,
            "coding": 2 if p.coding == Coding.UCS2 else 0, "unicode": p.coding == Coding.UCS2,
            "flash": p.flash, "mclass": "0" if p.flash else None,
            "validity": validity,
            "validity_minutes": math.ceil(validity / 60) if validity else None,
            "report": p.report, "dlr_mask": 19 if p.report else None,
            "id": p.message_id, "part_id": f"{p.message_id}.{seq}",
        }
        values["dlr_url"] = (self.hooks.url("dlr", values, p.total if self._provider_concat
                                            else 1) if p.report else None)
        values["mo_url"] = self.hooks.url("mo")
        return values

    def _url(self, template: str, values: dict[str, Any]) -> str:
        """The request URL: placeholders escaped, the host the one now in use."""
        url = urlsplit(render_text(template, values, lambda v: quote(v, safe="")))
        return urlunsplit(url._replace(netloc=self._netloc))

    def _auth(self, headers: dict[str, str], params: dict[str, str]) -> None:
        """The configured auth style, into the request's headers or query."""
        s = self.settings
        if s.token is not None:
            headers["Authorization"] = f"Bearer {s.token.get_secret_value()}"
        elif s.username is not None and s.password is not None and s.credentials_in == "query":
            params["username"] = s.username
            params["password"] = s.password.get_secret_value()
        elif s.username is not None and s.password is not None:
            pair = f"{s.username}:{s.password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif s.api_key is not None:
            if s.api_key_header:
                headers[s.api_key_header] = s.api_key.get_secret_value()
            else:
                params[s.api_key_query or ""] = s.api_key.get_secret_value()

    def _request_args(self, values: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        kw: dict[str, Any] = {}
        headers = {k: render_text(v, values) for k, v in s.headers.items()}
        params = render_fields(s.query, values) if s.query else {}
        self._auth(headers, params)
        if s.form is not None:
            kw["data"] = render_fields(s.form, values)
        elif s.json_body is not None:
            kw["data"] = orjson.dumps(render_json(s.json_body, values))
            headers.setdefault("Content-Type", "application/json")
        if params:
            kw["params"] = params
        kw["headers"] = headers
        return kw

    async def _send(self, groups: list[list[Part]]) -> None:
        """One request for these recipients; every part is reported exactly once."""
        task = asyncio.current_task()
        assert task is not None and self._session is not None
        peer = self._peer
        try:
            values = self._values(groups)
            kw = self._request_args(values)
            url = self._url(self.settings.url or "", values)
            async with self._session.request(self.settings.method or "POST", url, **kw) as resp:
                body = await resp.content.read(ANSWER_MAX)
                status, headers = resp.status, resp.headers
        except TimeoutError:
            self._connection_failed(
                task, f"no answer from {peer} within {self.settings.response_timeout:g} s")
            return
        except aiohttp.ClientConnectorError as exc:
            self._connection_failed(task, f"cannot connect to {peer}: {exc}")
            return
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            detail = "" if isinstance(exc, aiohttp.ServerDisconnectedError) else f": {exc}"
            self._connection_failed(task, f"connection to {peer} closed by the SMSC{detail}")
            return
        except ValueError as exc:  # a URL or field the provider can never take
            self._settle(task, PERMANENT, f"cannot build the request: {exc}")
            return
        except aiohttp.ClientError as exc:  # redirects, a malformed answer
            self._settle(task, TEMPORARY, f"request to {peer} failed: {exc}")
            return
        except Exception as exc:  # a bug here must not lose the parts (rule 2)
            self.log.exception("request to %s failed unexpectedly", peer)
            self._settle(task, TEMPORARY, f"request to {peer} failed: {exc!r}")
            return
        self._failures = 0
        self._judge(task, groups, status, headers, body)

    def _judge(self, task: asyncio.Task[None], groups: list[list[Part]], status: int,
               headers: Any, body: bytes) -> None:
        if status == 429:
            pause = retry_after(headers.get("Retry-After"), self.settings.throttle_backoff)
            self._throttle(pause)
            self._settle(task, FailureKind.THROTTLED, f"HTTP 429 from {self._peer}, "
                                                      f"retry after {pause:g} s")
            return
        if status in (401, 403):
            reason = (f"credentials refused by {self._peer} (HTTP {status}: {_snippet(body)}) "
                      "- check username/password, token or api_key")
            self._drop(reason)
            return
        accepted = status in self._success if self._success else 200 <= status < 300
        if accepted:
            doc = self._doc(body) if (self.settings.success_pointer or
                                      self.settings.id_pointer) else None
            if not self._passes(body, doc):
                self._settle(task, PERMANENT, f"refused by {self._peer}: {_snippet(body)}")
                return
            self._sent(task, groups, self._carrier_ids(body, doc))
            return
        kind = TEMPORARY if status >= 500 else PERMANENT
        self._settle(task, kind, f"HTTP {status} from {self._peer}: {_snippet(body)}")

    @staticmethod
    def _doc(body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return None

    def _passes(self, body: bytes, doc: Any) -> bool:
        s = self.settings
        if self._success_re is not None and not self._success_re.search(
                body.decode("utf-8", "replace")):
            return False
        if s.success_pointer:
            value = pointer(doc, s.success_pointer)
            if value is None or str(value) not in self._success_values:
                return False
        return True

    def _carrier_ids(self, body: bytes, doc: Any) -> list[str] | str | None:
        s = self.settings
        if s.id_pointer:
            value = pointer(doc, s.id_pointer)
            if isinstance(value, list):
                return [str(v) for v in value] if all(v is not None for v in value) else None
            return None if value is None else str(value)
        if self._id_re is not None:
            m = self._id_re.search(body.decode("utf-8", "replace"))
            return m.group(1) if m and m.groups() else (m.group(0) if m else None)
        return None

    def _sent(self, task: asyncio.Task[None], groups: list[list[Part]],
              ids: list[str] | str | None) -> None:
        parts = self._active.pop(task, None)
        if parts is None:
            return  # already settled (the link went down meanwhile)
        self._held -= len(parts)
        if isinstance(ids, list) and len(ids) != len(groups):
            self.log.warning("%d carrier ids for %d recipients; using our own ids",
                             len(ids), len(groups))
            ids = None
        on_sent = self.events.on_sent
        whole = self._provider_concat
        for i, group in enumerate(groups):
            first = group[0]
            if ids is None:
                if self.settings.id_pointer or self._id_re is not None:
                    self.log.warning("no carrier id in the answer for message %d; "
                                     "its reports cannot be matched", first.message_id)
                base = f"{first.message_id}.{1 if whole else first.seq}"  # {part_id}
            else:
                base = ids[i] if isinstance(ids, list) else ids
                if self._ids_with_recipient:
                    base = f"{base}:{first.recipient}"
            if whole and first.total > 1:
                for part in group:
                    on_sent(part, f"{base}#{part.seq}")
            else:
                for part in group:
                    on_sent(part, base)
        self._after_settle()

    def _settle(self, task: asyncio.Task[None], kind: FailureKind, reason: str) -> None:
        """Every part of one request failed alike."""
        parts = self._active.pop(task, None)
        if parts is None:
            return
        self._held -= len(parts)
        for part in parts:
            self.events.on_failed(part, kind, reason)
        self._after_settle()

    def _connection_failed(self, task: asyncio.Task[None], reason: str) -> None:
        self._failures += 1
        self._last_error = reason
        if self._failures >= self.settings.down_after or self._stopping:
            self._drop(reason)
        else:
            self.log.info("%s (%d in a row)", reason, self._failures)
            self._settle(task, TEMPORARY, reason)

    def _after_settle(self) -> None:
        if self._stopping and self._drained is not None and not self.in_flight:
            self._drained.set()
        self._want_pump()

    # --- parts -> requests ---------------------------------------------------------------

    def _take(self) -> list[list[Part]]:
        """The next request's parts: one message (or part), then more recipients of the
        same text while `batch` allows; they are contiguous because the core hands a
        submission's messages one after the other."""
        queue = self._queue
        groups = [self._group()]
        if self._batch > 1:
            key = _content(groups[0])
            while queue and len(groups) < self._batch:
                candidate = self._group()
                if _content(candidate) != key:
                    for part in reversed(candidate):
                        queue.appendleft(part)
                    break
                groups.append(candidate)
        return groups

    def _group(self) -> list[Part]:
        queue = self._queue
        first = queue.popleft()
        group = [first]
        if self._provider_concat:
            while queue and queue[0].message_id == first.message_id:
                group.append(queue.popleft())
        return group

    def _want_pump(self) -> None:
        if self._pump_handle is None and self._queue:
            self._pump_handle = self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Start requests while there is window, rate and no throttle pause."""
        self._pump_handle = None
        if self._state is not _UP or self._session is None:
            return
        now = self._loop.time()
        if now < self._throttled_until:
            self._wake_at(self._throttled_until)
            return
        window = self.settings.window
        while self._queue and len(self._active) < window:
            bucket = self._bucket
            if bucket is not None and not bucket.ready(now):
                self._wake_at(now + bucket.wait(now))
                return
            groups = self._take()
            if bucket is not None:
                bucket.spend(sum(len(g) for g in groups))
            task = self._loop.create_task(self._send(groups))
            parts = [p for g in groups for p in g]
            self._active[task] = parts
            self._held += len(parts)

    def _wake_at(self, when: float) -> None:
        if self._wake is not None:
            if self._wake_time <= when:
                return
            self._wake.cancel()
        self._wake_time = when  # uvloop's handle may lack when()
        self._wake = self._loop.call_at(when, self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._pump()

    def _throttle(self, pause: float) -> None:
        until = self._loop.time() + pause
        if until > self._throttled_until:
            if self._loop.time() >= self._throttled_until:
                self.log.info("throttled by %s; pausing %g s", self._peer, pause)
            self._throttled_until = until

    # --- down and up -------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        """End the UP period: state first, then everything held back as TEMPORARY."""
        self._last_error = reason
        if not self._stopping and self._state is _UP:
            self.set_state(LinkState.DOWN)
            self.log.warning("link down: %s", reason)
        for part in self._release():
            self.events.on_failed(part, TEMPORARY, reason)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        if self._drained is not None:
            self._drained.set()

    def _release(self) -> list[Part]:
        """Forget every request and queued part; the parts, in the order taken."""
        held = [p for parts in self._active.values() for p in parts]
        for task in self._active:
            task.cancel()
        self._active.clear()
        self._held = 0
        held += self._queue
        self._queue.clear()
        self._failures = 0
        self._throttled_until = 0.0
        for handle in (self._wake, self._pump_handle):
            if handle is not None:
                handle.cancel()
        self._wake = self._pump_handle = None
        return held

    async def _probe(self, host: str, port: int) -> None:
        """Is the provider there (and are the credentials good)? LinkFailed says why not."""
        peer = f"{host}:{port}"
        s = self.settings
        if not s.probe_url:
            try:
                async with asyncio.timeout(s.connect_timeout):
                    _, writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError) as exc:
                raise LinkFailed(f"cannot connect to {peer}: {exc or type(exc).__name__}") from None
            writer.close()
            return
        assert self._session is not None
        url = urlunsplit(urlsplit(s.probe_url)._replace(netloc=_netloc(host, port)))
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        self._auth(headers, params)
        try:
            async with self._session.get(url, headers=headers, params=params,
                                         timeout=aiohttp.ClientTimeout(total=s.connect_timeout)
                                         ) as resp:
                body = await resp.content.read(ANSWER_MAX)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise LinkFailed(f"cannot connect to {peer}: {exc or type(exc).__name__}") from None
        if resp.status in (401, 403):
            raise LinkFailed(f"credentials refused by {peer} (HTTP {resp.status}: "
                             f"{_snippet(body)}) - check username/password, token or api_key")
        if resp.status >= 400:
            raise LinkFailed(f"probe {s.probe_url} answered HTTP {resp.status}: {_snippet(body)}")

    async def _run(self) -> None:
        failed_rounds = 0
        c = self.settings
        while not self._stopping:
            for host, port in self._hosts:
                try:
                    await self._probe(host, port)
                except LinkFailed as exc:
                    self._attempts += 1
                    self._last_error = str(exc)
                    self.set_state(LinkState.DOWN)
                    self.log.warning("%s", exc)
                    continue
                self._peer, self._netloc = f"{host}:{port}", _netloc(host, port)
                failed_rounds = self._attempts = self._failures = 0
                self._lost = self._loop.create_future()
                if self._bucket is not None:
                    self._bucket.reset(self._loop.time())
                self.set_state(LinkState.UP)
                self.log.info("provider %s answers; sending to %s", self._peer,
                              self.settings.url)
                await self._lost
                break
            else:
                failed_rounds += 1
            delay = backoff_delay(failed_rounds, c.reconnect_min, c.reconnect_max)
            self.log.info("probing again in %.2f s", delay)
            await asyncio.sleep(delay)

    async def _serve_hooks(self) -> None:
        """The link's own callback port (`listen`), for a provider that must not see the API."""
        assert self.settings.listen is not None

        async def hook(request: web.Request) -> web.StreamResponse:
            if request.match_info["link"] != self.name:
                return web.Response(status=404, text=f"ERROR no link {request.match_info['link']!r}\n")
            return await self.hooks.handle(request.match_info["kind"], request)

        app = web.Application()
        app.router.add_route("*", "/hooks/{link}/{kind}", hook)
        self._hook_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._hook_runner.setup()
        host, port = split_hostport(self.settings.listen)
        site = web.TCPSite(self._hook_runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.hooks.base is None:
            self.hooks.base = f"http://{_netloc(host, bound)}"
        self.log.info("callbacks on http://%s/hooks/%s/", _netloc(host, bound), self.name)

    # --- the contract ------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        s = self.settings
        connector = aiohttp.TCPConnector(limit=s.window, limit_per_host=s.window,
                                         ssl=bool(s.verify_tls))
        self._session = aiohttp.ClientSession(
            connector=connector, raise_for_status=False,
            timeout=aiohttp.ClientTimeout(total=s.response_timeout, connect=s.connect_timeout))
        if s.listen is not None:
            await self._serve_hooks()
        self.set_state(LinkState.CONNECTING)
        self.log.info("starting: profile %s, %s, window %d, batch %d, long messages %s",
                      s.profile, ", ".join(f"{h}:{p}" for h, p in self._hosts), s.window,
                      self._batch, "whole" if self._provider_concat else "part by part")
        self._task = self._loop.create_task(self._run(), name=f"http-link-{self.name}")

    def submit(self, part: Part) -> None:
        if self._state is not _UP or self._stopping:
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self.events.on_failed, part, TEMPORARY,
                           f"link {self.name} is {self._state.value}")
            return
        self._queue.append(part)
        self._want_pump()

    def capacity(self) -> int:
        if self._state is not _UP or self._stopping:
            return 0
        if self._throttled_until and self._loop.time() < self._throttled_until:
            return 0
        room = self._limit - len(self._queue) - self._held
        return room if room > 0 else 0

    @property
    def in_flight(self) -> int:
        return len(self._queue) + self._held

    async def stop(self, finish: bool = True) -> None:
        """Stop taking parts; with `finish`, let requests in flight end (at most
        `response_timeout`); what is still held is failed as TEMPORARY (rule 5)."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if finish and self.in_flight:
            self._drained = asyncio.Event()
            self._want_pump()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.response_timeout):
                    await self._drained.wait()
            self._drained = None
        self._shutdown("link stopped")
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def terminate(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._shutdown("link terminated")

    def _shutdown(self, reason: str) -> None:
        self._stopping = True
        held = self._release()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        self.set_state(LinkState.STOPPED)
        for part in held:
            self.events.on_failed(part, TEMPORARY, reason)
        # Closing sockets needs the loop; never waited for here (terminate never waits).
        for closer in (self._session.close() if self._session else None,
                       self._hook_runner.cleanup() if self._hook_runner else None):
            if closer is not None:
                closing = asyncio.ensure_future(closer)
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        self._session = None
        self._hook_runner = None

    async def handle_hook(self, kind: str, request: web.Request) -> web.Response:
        """A provider's callback (`api/webhooks.py` routes it here by link name)."""
        return await self.hooks.handle(kind, request)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(profile=self.settings.profile, host=self._peer or None,
                 window=self.settings.window, requests=len(self._active),
                 queued=len(self._queue),
                 throttled=bool(self._throttled_until
                                and self._loop.time() < self._throttled_until),
                 failed_attempts=self._attempts, last_error=self._last_error or None,
                 dlr_url=self.hooks.url("dlr"), mo_url=self.hooks.url("mo"))
        return d


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _content(group: list[Part]) -> tuple[Any, ...]:
    """What must be equal for recipients to share one request."""
    p = group[0]
    return (tuple(q.data for q in group), p.coding, p.sender, p.flash, p.report,
            None if p.validity_until is None else int(p.validity_until))
