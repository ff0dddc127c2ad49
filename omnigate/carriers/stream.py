"""What every carrier link over TCP shares: the asyncio edge around a sans-I/O session.

SMPP, UCP/EMI and CIMD2 differ in their bytes (a protocol's `codec`) and in the state
machine of one connection (its `session`, STYLE §4), not in what the link around them
does. That part lives here once: connecting with a timeout over `hosts` in order
(failover), reconnecting with exponential backoff and jitter, the token-bucket rate
limit, the queue of parts waiting for window room, `capacity()`, failing everything
held as TEMPORARY when a connection is lost (contract rule 3), graceful `stop` and
immediate `terminate` (rule 5), one `transport.write` per loop iteration for all the
frames produced in it, and one timer per connection at the session's next deadline.

The API a protocol module uses (see `carriers/smpp/link.py`, `carriers/ucp/link.py`):

`StreamConfig`
    The `[[links]]` fields these links share: `hosts` (at least one, tried in order),
    `window`, `queue`, `response_timeout`, `throttle_backoff`; a protocol extends it.

`Session` (a Protocol)
    What the sans-I/O session must offer: `feed(data, now)` and `handle_timer(now)`
    returning events, `next_deadline()`, `data_to_send()`, `submit(body, token, now)`,
    `close()` returning the tokens still held (in the order sent), and the integers
    `window_room` (submits it takes now; 0 unless logged in) and `in_window`.

`Connection`
    The `asyncio.Protocol` carrying one session. `ready` resolves with None once logged
    in or with the reason it was not: the link's `_handle` calls `conn.login_done(None
    or reason)`. `finished` resolves when the connection has ended (a session event may
    resolve it earlier, e.g. on a logout answer). `flush()` writes what the session
    produced and re-arms the timer; `close(abort)` returns the tokens still held.

`StreamLink`
    A `Link`; a protocol subclasses it, sets `config_model` and `protocol`, and fills in

    - `_encode(part) -> body`: what `session.submit` sends for the part; ValueError
      fails the part PERMANENT at once (it can never be sent).
    - `async _open(host, port, peer, conns)`: make each connection (`Connection(self,
      session, peer)`), append it to `conns` at once (they are closed if the attempt
      fails), `await self._dial(conn, host, port)`, start the login on the session,
      `conn.flush()`, `await self._logged_in(conn)`. Raise `LinkFailed(reason)`. The
      first connection of `conns` is the one parts are submitted on.
    - `_handle(conn, events)`: act on the session's events. Helpers:
      `self.events.on_sent(token, ref)`, `_submit_failed(token, kind, reason)` (pauses
      sending on THROTTLED), `_timed_out(conn, token, reason)`, `_on_conn_failed(conn,
      reason)` (connection unusable: fails the attempt, or ends the UP period),
      `conn.login_done(reason)`.
    - optionally `_goodbye(conn, now) -> Future | None`: start a graceful logout
      (SMPP unbind, CIMD2 logout) and return what resolves when it is done; the
      default, None, suits a protocol without one (UCP/EMI): stop() then just closes.

    and may override `_start_line()`, `_up_line(peer)`, `_leave_line(peer)` (log
    text) and `describe()`.

`LinkFailed`
    A connect or login attempt did not work; its message is the reason for the log.

`backoff_delay(failed_rounds, low, high)`
    The reconnect delay: doubling from `low` to `high`, with equal jitter.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import random
from collections import deque
from typing import Any, Protocol

from pydantic import ConfigDict, Field, field_validator

from omnigate.carriers.base import Link, LinkConfig, LinkEvents, LinkState
from omnigate.config import split_hostport
from omnigate.model import FailureKind, Part
from omnigate.routing.ratelimit import TokenBucket

TEMPORARY = FailureKind.TEMPORARY
_UP = LinkState.UP  # Enum class attribute access is slow in CPython 3.11; hot paths use this


class StreamConfig(LinkConfig):
    """Fields of every link over a TCP stream; a protocol's config extends it."""

    # Validation errors would otherwise echo the input, password included (STYLE §7).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    hosts: list[str] = Field(min_length=1, description="host:port, tried in order (failover)")
    window: int = Field(10, ge=1, le=1000, description="submits awaiting the carrier's answer")
    queue: int = Field(10, ge=0, le=100_000,
                       description="parts held beyond the window (waiting for room or rate)")
    response_timeout: float = Field(10.0, gt=0,
                                    description="seconds to wait for any response")
    throttle_backoff: float = Field(1.0, gt=0, description="seconds to pause after throttling")

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for h in hosts:
            split_hostport(h)
        return hosts


class Session(Protocol):
    """The sans-I/O session of one connection, as the stream machinery drives it."""

    @property
    def window_room(self) -> int: ...
    @property
    def in_window(self) -> int: ...
    def feed(self, data: bytes, now: float) -> list[Any]: ...
    def handle_timer(self, now: float) -> list[Any]: ...
    def next_deadline(self) -> float | None: ...
    def data_to_send(self) -> bytes: ...
    def submit(self, body: Any, token: Any, now: float) -> Any: ...
    def close(self) -> list[Any]: ...


class LinkFailed(Exception):
    """A connect or login attempt did not work; the message says why, for the log."""


def backoff_delay(failed_rounds: int, low: float, high: float) -> float:
    """Seconds before the next round over `hosts`: `low` doubling per failed round up to
    `high`, then "equal jitter" (half fixed, half random) so that many links cut off by
    one outage do not all come back in the same instant."""
    delay = min(high, low * 2 ** max(failed_rounds - 1, 0))
    return delay / 2 + random.uniform(0, delay / 2)


class Connection(asyncio.Protocol):
    """One TCP connection carrying one session; every decision is the link's."""

    closed_by = "the SMSC"  # who closed it, when the peer did, in the field's words

    def __init__(self, link: StreamLink, session: Any, peer: str) -> None:
        self.link = link
        self.session = session
        self.peer = peer
        self.loop = link._loop
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.Handle | None = None
        self.timer_at = 0.0
        self.flush_handle: asyncio.Handle | None = None
        # Resolves with None once logged in, or with the reason it failed.
        self.ready: asyncio.Future[str | None] = self.loop.create_future()
        self.finished: asyncio.Future[None] = self.loop.create_future()  # logged out or lost
        self.dropped = False  # we closed it; connection_lost is then no news

    # asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's TCPTransport is not an asyncio.Transport subclass.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        events = self.session.feed(data, self.loop.time())
        if events:
            self.link._on_events(self, events)
        self.flush()

    def eof_received(self) -> bool:
        return False  # half-closed is closed: none of these protocols has a use for it

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_handles()
        if not self.finished.done():
            self.finished.set_result(None)
        if not self.dropped:
            self.dropped = True
            why = f"lost: {exc}" if exc else f"closed by {self.closed_by}"
            self.link._on_conn_failed(self, f"connection to {self.peer} {why}")

    # helpers -----------------------------------------------------------------------

    def login_done(self, reason: str | None) -> None:
        """The login was answered: None if accepted, else why not."""
        if not self.ready.done():
            self.ready.set_result(reason)

    def flush(self) -> None:
        """Write what the session produced, in one write, and re-arm the timer: done once
        per loop iteration for all parts submitted in it, not once per part."""
        self.flush_handle = None
        if self.dropped:
            return
        data = self.session.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        self.arm_timer()

    def want_flush(self) -> None:
        if self.flush_handle is None:
            self.flush_handle = self.loop.call_soon(self.flush)

    def arm_timer(self) -> None:
        """Keep one TimerHandle at the session's next deadline. Deadlines only move later
        as requests are answered, so an early wake-up is harmless and rescheduling is
        rare: only when a deadline earlier than the armed one appears."""
        deadline = self.session.next_deadline()
        timer = self.timer
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self.timer = None
            return
        if timer is not None:
            if self.timer_at <= deadline:
                return
            timer.cancel()
        # The deadline is kept beside the handle: uvloop hands back a plain Handle,
        # without when(), for a time already past.
        self.timer_at = deadline
        self.timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        events = self.session.handle_timer(self.loop.time())
        if events:
            self.link._on_events(self, events)
        self.flush()

    def _cancel_handles(self) -> None:
        for handle in (self.timer, self.flush_handle):
            if handle is not None:
                handle.cancel()
        self.timer = self.flush_handle = None

    def close(self, abort: bool) -> list[Any]:
        """Close (flushing what is written) or abort; returns the tokens still held."""
        if not self.dropped:
            self.flush()
            self.dropped = True
            if self.transport is not None:
                if abort:
                    self.transport.abort()
                else:
                    self.transport.close()
        self._cancel_handles()
        self.login_done("closed")
        return self.session.close()


class StreamLink(Link):
    """A carrier link over TCP; see the module docstring for what a protocol fills in."""

    config_model = StreamConfig
    config: StreamConfig  # Link.__init__ checked it against config_model

    def __init__(self, config: StreamConfig, events: LinkEvents) -> None:
        super().__init__(config, events)
        c = self.config
        self._hosts = [split_hostport(h) for h in c.hosts]
        self._limit = c.window + c.queue
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._queue: deque[tuple[Part, Any]] = deque()
        self._conns: list[Connection] = []
        self._tx: Connection | None = None  # the connection that takes submits
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Future[str] | None = None  # resolves when an UP period ends
        self._stopping = False
        self._drained: asyncio.Event | None = None
        # Rate: a token bucket of max_rate parts/s holding at most 100 ms of parts, so
        # a burst never exceeds what the carrier's per-second counter can absorb.
        self._bucket = TokenBucket(c.max_rate, burst=max(1.0, c.max_rate / 10)) \
            if c.max_rate else None
        self._throttled_until = 0.0
        self._wake: asyncio.Handle | None = None
        self._wake_at_time = 0.0
        # What `describe()` shows.
        self._peer = ""
        self._attempts = 0
        self._last_error = ""

    # --- what a protocol fills in ----------------------------------------------------

    @abc.abstractmethod
    def _encode(self, part: Part) -> Any:
        """What `session.submit` sends for this part; ValueError if it cannot be sent."""

    @abc.abstractmethod
    async def _open(self, host: str, port: int, peer: str, conns: list[Connection]) -> None:
        """Connect and log in every connection of the link; raise LinkFailed with why."""

    @abc.abstractmethod
    def _handle(self, conn: Connection, events: list[Any]) -> None:
        """Act on the events a session produced."""

    def _goodbye(self, conn: Connection, now: float) -> asyncio.Future[None] | None:
        """Start a graceful logout on `conn`; what resolves once it is done, or None."""
        return None

    def _peer_name(self, host: str, port: int) -> str:
        """How logs and `describe()` name an entry of `_hosts`."""
        return f"{host}:{port}"

    def _start_line(self) -> str:
        return f"window {self.config.window}"

    def _up_line(self, peer: str) -> str:
        return f"logged in to {peer}"

    def _leave_line(self, peer: str) -> str:
        return f"logging out from {peer}"

    # --- helpers for a protocol's _open and _handle ------------------------------------

    async def _dial(self, conn: Connection, host: str, port: int) -> None:
        """Open the TCP connection for `conn` within `connect_timeout`."""
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                await self._loop.create_connection(lambda: conn, host, port)
        except (OSError, TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            raise LinkFailed(f"cannot connect to {conn.peer}: {why}") from None

    async def _logged_in(self, conn: Connection) -> None:
        """Wait for the login answer (`conn.login_done`); LinkFailed if refused."""
        reason = await conn.ready
        if reason is not None:
            raise LinkFailed(reason)

    def _submit_failed(self, token: Any, kind: FailureKind, reason: str) -> None:
        """The carrier refused a part; THROTTLED also pauses sending `throttle_backoff`."""
        if kind is FailureKind.THROTTLED:
            now = self._loop.time()
            if now >= self._throttled_until:
                self.log.info("throttled by the SMSC (%s); pausing %g s", reason,
                              self.config.throttle_backoff)
            self._throttled_until = now + self.config.throttle_backoff
            self._wake_at(self._throttled_until)
        self.events.on_failed(token, kind, reason)

    def _timed_out(self, conn: Connection, token: Any, reason: str) -> None:
        """No answer in time: the part (if any) back as temporary, and the connection is
        dropped (Kannel's `wait-ack-expire` default): an SMSC that stops answering one
        request is rarely still answering others."""
        if token is not None:
            self.events.on_failed(token, TEMPORARY, reason)
        self._on_conn_failed(conn, reason)

    def _on_events(self, conn: Connection, events: list[Any]) -> None:
        self._handle(conn, events)
        if self._stopping and self._drained is not None and not self.in_flight:
            self._drained.set()
        if self._queue:
            self._pump()

    def _on_conn_failed(self, conn: Connection, reason: str) -> None:
        """A connection is unusable. While logging in, that fails the attempt; while UP,
        it ends the UP period (the whole link: a pair stands or falls together)."""
        if not conn.ready.done():
            conn.login_done(reason)
            conn.close(abort=True)
            return
        if conn not in self._conns:
            conn.close(abort=True)
        elif self._stopping:
            # Going down anyway: settle this connection alone, so the other half of a
            # pair can still finish its logout.
            for part in conn.close(abort=True):
                self.events.on_failed(part, TEMPORARY, reason)
            if not conn.finished.done():
                conn.finished.set_result(None)
            if self._drained is not None and not self.in_flight:
                self._drained.set()
        else:
            self._drop(reason)

    # --- parts -> window ---------------------------------------------------------------

    def _pump(self) -> None:
        """Move queued parts into the window while room, rate and throttle allow."""
        queue = self._queue
        conn = self._tx
        if not queue or conn is None:
            return
        session = conn.session
        room = session.window_room
        if room <= 0:
            return
        now = self._loop.time()
        if self._throttled_until:
            if now < self._throttled_until:
                self._wake_at(self._throttled_until)
                return
            self._throttled_until = 0.0
        if len(queue) < room:
            room = len(queue)
        bucket = self._bucket
        if bucket is not None:
            tokens = bucket.available(now)
            if not tokens:
                self._wake_at(now + bucket.wait(now))
                return
            room = min(room, tokens)
            bucket.spend(room)
        submit = session.submit
        popleft = queue.popleft
        for _ in range(room):
            part, body = popleft()
            submit(body, part, now)
        if bucket is not None and queue and session.window_room:
            self._wake_at(now + bucket.wait(now))
        if conn.flush_handle is None:
            conn.want_flush()

    def _wake_at(self, when: float) -> None:
        wake = self._wake
        if wake is not None:
            if self._wake_at_time <= when:
                return
            wake.cancel()
        self._wake_at_time = when
        self._wake = self._loop.call_at(when, self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._pump()

    # --- losing the connection ----------------------------------------------------------

    def _drop(self, reason: str) -> None:
        """End the UP period: state first, so the core hands us nothing more; then every
        held part back as temporary (rule 3); the supervisor then reconnects."""
        self._last_error = reason
        if not self._stopping:
            self.set_state(LinkState.DOWN)
            self.log.warning("link down: %s", reason)
        held = self._close_all(abort=True)
        for part in held:
            self.events.on_failed(part, TEMPORARY, reason)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        if self._drained is not None:
            self._drained.set()

    def _close_all(self, abort: bool) -> list[Part]:
        """Close every connection; the parts held (window first, in order sent, then queue)."""
        held: list[Part] = []
        for conn in self._conns:
            held += conn.close(abort)
        self._conns = []
        self._tx = None
        held += [part for part, _ in self._queue]
        self._queue.clear()
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._throttled_until = 0.0
        return held

    # --- supervisor: connect, log in, wait, reconnect -------------------------------------

    async def _run(self) -> None:
        failed_rounds = 0
        c = self.config
        while not self._stopping:
            for host, port in self._hosts:
                peer = self._peer_name(host, port)
                conns: list[Connection] = []
                try:
                    await self._open(host, port, peer, conns)
                    lost = next((conn for conn in conns if conn.dropped), None)
                    if lost is not None:  # the first of a pair died while the second logged in
                        raise LinkFailed(f"connection to {peer} lost while logging in")
                except BaseException as exc:
                    for conn in conns:
                        conn.close(abort=True)
                    if not isinstance(exc, Exception):
                        raise  # cancelled: stop() or terminate()
                    # LinkFailed says why in words; anything else is a bug, but the link
                    # must keep trying rather than die quietly with its task.
                    if not isinstance(exc, LinkFailed):
                        self.log.exception("unexpected error connecting to %s", peer)
                    self._attempts += 1
                    self._last_error = str(exc)
                    self.set_state(LinkState.DOWN)
                    self.log.warning("%s", exc)
                    continue
                self._conns = conns
                self._tx = conns[0]
                failed_rounds = 0
                self._attempts = 0
                self._peer = peer
                self._lost = self._loop.create_future()
                if self._bucket is not None:
                    self._bucket.reset(self._loop.time())
                self.set_state(LinkState.UP)
                self.log.info("%s", self._up_line(peer))
                await self._lost
                break
            else:
                failed_rounds += 1
            delay = backoff_delay(failed_rounds, c.reconnect_min, c.reconnect_max)
            self.log.info("reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)

    # --- the contract ------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self.set_state(LinkState.CONNECTING)
        self.log.info("starting: %s", ", ".join([*self.config.hosts, self._start_line()]))
        self._task = self._loop.create_task(self._run(),
                                            name=f"{self.protocol}-link-{self.name}")

    def submit(self, part: Part) -> None:
        if self._state is not _UP or self._stopping:
            # Contract: only called while capacity() > 0. Refuse without raising, and
            # not from inside the caller's own call.
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self.events.on_failed, part, TEMPORARY,
                           f"link {self.name} is {self._state.value}")
            return
        try:
            body = self._encode(part)
        except ValueError as exc:
            self._loop.call_soon(self.events.on_failed, part, FailureKind.PERMANENT, str(exc))
            return
        conn = self._tx
        if (not self._queue and self._bucket is None and not self._throttled_until
                and conn is not None and conn.session.window_room > 0):
            # The common case, straight into the window.
            conn.session.submit(body, part, self._loop.time())
            if conn.flush_handle is None:
                conn.want_flush()
            return
        self._queue.append((part, body))
        self._pump()

    def capacity(self) -> int:
        if self._state is not _UP or self._stopping or self._tx is None:
            return 0
        if self._throttled_until and self._loop.time() < self._throttled_until:
            return 0
        room = self._limit - len(self._queue) - self._tx.session.in_window
        return room if room > 0 else 0

    @property
    def in_flight(self) -> int:
        n = len(self._queue)
        for conn in self._conns:
            n += conn.session.in_window
        return n

    async def stop(self, finish: bool = True) -> None:
        """Stop taking parts; with `finish`, let the window (and queue) drain for at most
        `response_timeout`, then log out and close. Whatever is still held is failed as
        temporary (rule 5)."""
        if self._task is None and not self._conns:
            self.set_state(LinkState.STOPPED)
            return
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        timeout = self.config.response_timeout
        if finish and self._conns and self.in_flight:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._drained.wait()
            self._drained = None
        now = self._loop.time()
        leaving = []
        for conn in self._conns:
            done = self._goodbye(conn, now)
            if done is not None:
                conn.flush()
                leaving.append(done)
        if leaving:
            self.log.info("%s", self._leave_line(self._peer))
            if finish:
                await asyncio.wait(leaving, timeout=timeout)
        self._shutdown("link stopped", abort=False)

    def terminate(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._shutdown("link terminated", abort=True)

    def _shutdown(self, reason: str, abort: bool) -> None:
        self._stopping = True
        held = self._close_all(abort)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        self.set_state(LinkState.STOPPED)
        for part in held:
            self.events.on_failed(part, TEMPORARY, reason)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(host=self._peer or None, window=self.config.window,
                 in_window=self._tx.session.in_window if self._tx else 0,
                 queued=len(self._queue),
                 throttled=bool(self._throttled_until
                                and self._loop.time() < self._throttled_until),
                 failed_attempts=self._attempts, last_error=self._last_error or None)
        return d
