"""The SMPP server: client systems bind to omnigate as if it were their SMSC.

Applications that speak only SMPP (marketing platforms, alarm servers, other
gateways) bind with an omnigate account (system_id = [[accounts]] name, password
checked as the HTTP API checks it), submit, and get delivery receipts and MO back over
the same session, while routing, fallback and logs apply as for every other ingress.

The wire is `omnigate.carriers.smpp.codec`, the session `smppsession.ServerSession`
(sans-I/O, sharing `Peer` with the client session); this module is the policy.

- submit_sm -> `Gateway.submit` (origin smpp, account = the bound account);
  submit_sm_resp carries our message id only after the commit. Refusals:

  =====================  ===============================================
  ESME_RINVDSTADR        the number is not valid or has no route
  ESME_RINVSRCADR        source_addr is not a valid sender
  ESME_RINVMSGLEN        empty text, too many parts, unreadable user data
  ESME_RINVEXPIRY/SCHED  validity_period / schedule_delivery_time unreadable
  ESME_RINVESMCLASS      esm_class is not a plain message
  ESME_RINVBNDSTS        submit_sm before bind or on a receiver bind
  ESME_RTHROTTLED        over the account's rate
  ESME_RMSGQFUL          more than `window` submit_sm awaiting their answer
  ESME_RSUBMITFAIL       unsupported data_coding, a long message left incomplete
  ESME_RSYSERR           the store cannot take it now, omnigate stopping, a bug
  =====================  ===============================================

- Long messages (UDH IE 0/8 or the SAR TLVs) are reassembled per session into one
  message before `submit`, so routing, billing and the receipt see one message as
  with every other ingress. Each part's submit_sm_resp waits for that commit and all
  carry the same message id; a client's window must hold all parts of a message
  (smpplib's does: it never waits). Parts left incomplete for `reassembly_timeout`
  are answered ESME_RSUBMITFAIL; a session that ends leaves its parts unanswered.
- registered_delivery 1 (or 2: failures only) asks for a receipt: deliver_sm with
  esm_class 0x04, the Appendix B text and the receipted_message_id / message_state
  TLVs, to a receiver or transceiver bind of the account. Receipts and MO wait in the
  durable outbox (`smppoutbox`) until a client answers them with deliver_sm_resp; on
  a timeout or a temporary error they are sent again.
- Wrong binds are answered ESME_RINVPASWD, ever slower from the same address
  (`AuthThrottle`); a bind type the account may not use, or one session too many,
  ESME_RBINDFAIL. Addresses outside `allow` are disconnected at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from omnigate.api.auth import Authenticator, Credentials
from omnigate.api.smppoutbox import Outbox, Row
from omnigate.api.smppsession import (
    BindRequested,
    DeliverAnswered,
    Inactive,
    ProtocolError,
    ResponseTimeout,
    ServerSession,
    SubmitRequested,
    Unbound,
    Unexpected,
)
from omnigate.api.tcp import AuthThrottle
from omnigate.carriers.smpp import codec
from omnigate.config import (
    AccountConfig,
    Config,
    ConfigError,
    SmppServerConfig,
    split_hostport,
)
from omnigate.ids import id_time
from omnigate.model import (
    FailureKind,
    Inbound,
    Origin,
    Status,
    StatusChange,
    Submit,
    SubmitError,
    SubmitRequest,
)
from omnigate.routing.ratelimit import TokenBucket
from omnigate.sms.coding import Coding, decode
from omnigate.sms.segment import concat_udh, segment
from omnigate.store import Store

log = logging.getLogger("omnigate.api.smpp")

# SubmitError -> command_status: by kind first, then by the field it names.
_KIND_STATUS = {"unavailable": codec.ESME_RSYSERR, "too_large": codec.ESME_RINVMSGLEN}
_FIELD_STATUS = {"to": codec.ESME_RINVDSTADR, "from": codec.ESME_RINVSRCADR,
                 "sender": codec.ESME_RINVSRCADR, "text": codec.ESME_RINVMSGLEN,
                 "validity": codec.ESME_RINVEXPIRY, "schedule_at": codec.ESME_RINVSCHED,
                 "priority": codec.ESME_RINVPRTFLG}

# Kannel dlr-mask bits (delivery/dlr_url.py) kept in the message's dlr_mask: which
# final statuses the client asked a receipt for (SMPP 3.4 §5.2.17 registered_delivery).
_DELIVERED, _UNDELIVERED, _NACK = 1, 2, 16
_RECEIPT_MASK = {1: _DELIVERED | _UNDELIVERED | _NACK, 2: _UNDELIVERED | _NACK}
_STATUS_BIT = {Status.DELIVERED: _DELIVERED, Status.UNDELIVERED: _UNDELIVERED,
               Status.FAILED: _NACK, Status.EXPIRED: _NACK, Status.REJECTED: _NACK}
_ORIGIN = Origin.SMPP.value
_MAX_READ = 1 << 16  # asyncio's default; a PDU may span reads (codec.MAX_PDU_LENGTH)


def submit_status(exc: SubmitError) -> int:
    """The command_status for a refused submission."""
    return _KIND_STATUS.get(exc.kind) or _FIELD_STATUS.get(exc.field, codec.ESME_RSUBMITFAIL)


class Refused(Exception):
    """A submit_sm we answer with `status` without submitting it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class ShortMessage:
    """One submit_sm in our terms; `data` is the user data without UDH."""

    to: str
    sender: str | None
    coding: Coding
    data: bytes
    concat: tuple[int, int, int] | None
    flash: bool
    report_mask: int | None
    validity: float | None
    schedule_at: datetime | None
    priority: int

    def request(self, account: str, text: str) -> SubmitRequest:
        return SubmitRequest(
            to=[self.to], text=text, origin=Origin.SMPP, sender=self.sender, account=account,
            flash=self.flash, priority=self.priority, validity=self.validity,
            schedule_at=self.schedule_at, report=self.report_mask is not None,
            ucs2=self.coding is Coding.UCS2, dlr_mask=self.report_mask)


def _number(ton: int, addr: bytes) -> str:
    text = addr.decode("latin-1")
    return "+" + text if ton == 1 and text and not text.startswith("+") else text


def _is_flash(data_coding: int) -> bool:
    """Message class 0 (TS 23.038 §4): DCS 0x10/0x14/0x18 or 0xF0/0xF4."""
    return (data_coding & 0xF3) == 0x10 or (data_coding & 0xF3) == 0xF0


def read_submit(sm: codec.DeliverSm, now: float) -> ShortMessage:
    """submit_sm -> ShortMessage; Refused with the status for what cannot be sent."""
    if sm.esm_class & codec.ESM_TYPE_MASK:
        raise Refused(codec.ESME_RINVESMCLASS, f"esm_class 0x{sm.esm_class:02X} is not a "
                                               "plain message")
    if sm.short_message and codec.TAG_MESSAGE_PAYLOAD in sm.tlvs:
        raise Refused(codec.ESME_RINVMSGLEN, "short_message and message_payload together")
    coding = codec.inbound_coding(sm.data_coding)
    if coding is None:
        raise Refused(codec.ESME_RSUBMITFAIL, f"data_coding 0x{sm.data_coding:02X} (8-bit "
                                              "data or compressed) cannot be sent as text")
    try:
        data, concat = sm.split_udh()
    except codec.CodecError as exc:
        raise Refused(exc.status, exc.reason) from None
    try:
        validity = codec.parse_smpp_time(sm.validity_period, now)
    except ValueError as exc:
        raise Refused(codec.ESME_RINVEXPIRY, f"validity_period: {exc}") from None
    try:
        schedule = codec.parse_smpp_time(sm.schedule_delivery_time, now)
    except ValueError as exc:
        raise Refused(codec.ESME_RINVSCHED, f"schedule_delivery_time: {exc}") from None
    if validity is not None:
        validity -= schedule if schedule is not None and schedule > now else now
        if validity <= 0:
            raise Refused(codec.ESME_RINVEXPIRY, "validity_period has passed")
    rd = sm.registered_delivery & 0x03
    source = _number(sm.source_ton, sm.source_addr)
    return ShortMessage(
        to=_number(sm.dest_ton, sm.destination_addr), sender=source or None, coding=coding,
        data=data, concat=concat, flash=_is_flash(sm.data_coding),
        report_mask=_RECEIPT_MASK.get(rd), validity=validity,
        schedule_at=datetime.fromtimestamp(schedule, UTC) if schedule else None,
        priority=min(sm.priority_flag, 3))


def _text(coding: Coding, data: bytes) -> str:
    try:
        return decode(data, coding)
    except ValueError as exc:
        raise Refused(codec.ESME_RINVMSGLEN, f"user data not valid {coding.name}: {exc}") from None


def _address(value: str | None) -> bytes:
    """source/destination of a deliver_sm: international, national digits or alphanumeric."""
    if not value:
        return codec.address(0, 0, "")
    if value.startswith("+"):
        return codec.address(1, 1, value[1:])
    if value.isdigit():
        return codec.address(0, 1, value)
    return codec.address(5, 0, value[: codec.ADDR_MAX])


def receipt_body(change: StatusChange) -> bytes:
    """deliver_sm body of the receipt for a final status (SMPP 3.4 Appendix B, §5.3.2.12/35).
    From the phone to the client's sender, as a receipt travels."""
    msg = change.message
    mid = str(msg.id)
    err = "000" if change.status is Status.DELIVERED else "001"
    text = codec.receipt_text(mid, change.status, id_time(msg.id), change.at, msg.text, err)
    return codec.submit_sm_body(
        _address(msg.recipient), _address(msg.sender),
        text.encode("latin-1", "replace")[: codec.SHORT_MESSAGE_MAX],
        esm_class=codec.ESM_SMSC_RECEIPT, tlvs=codec.receipt_tlvs(mid, change.status))


def mo_bodies(inbound: Inbound, ref: int) -> list[bytes]:
    """deliver_sm bodies of an MO: one, or the parts of a long one with a UDH (IE 0)."""
    seg = segment(inbound.text, max_parts=255)
    source, dest = _address(inbound.sender), _address(inbound.recipient)
    total = len(seg.parts)
    bodies = []
    for seq, data in enumerate(seg.parts, 1):
        udh = concat_udh(ref, total, seq) if total > 1 else b""
        bodies.append(codec.submit_sm_body(source, dest, udh + data,
                                           esm_class=codec.ESM_UDHI if udh else 0,
                                           data_coding=int(seg.coding)))
    return bodies


# -- per account -------------------------------------------------------------------------


@dataclass(slots=True)
class _Account:
    """What the server keeps per account: permissions, rate, sessions, waiting deliver_sm."""

    name: str
    binds: frozenset[str]
    max_binds: int
    bucket: TokenBucket | None
    sessions: list[SmppConnection] = field(default_factory=list)
    queue: deque[Row] = field(default_factory=deque)  # stored, not yet sent


@dataclass(slots=True)
class _Assembly:
    """The parts of one long message arriving over one session."""

    parts: dict[int, tuple[ShortMessage, int]]  # part number -> (part, submit_sm sequence)
    timer: asyncio.TimerHandle


# -- one connection ------------------------------------------------------------------------


class SmppConnection(asyncio.Protocol):
    """One client connection: feeds the session, acts on its events, writes its bytes."""

    def __init__(self, server: SmppServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.account: _Account | None = None
        cfg = server.config
        self.session = ServerSession(system_id=cfg.system_id, window=cfg.window,
                                     inactivity=cfg.inactivity,
                                     response_timeout=cfg.response_timeout,
                                     now=self.loop.time())
        self._timer: asyncio.TimerHandle | None = None
        self._assemblies: dict[tuple[str, str | None, int, int], _Assembly] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- transport -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = self.transport.get_extra_info("peername")
        self.address = peer[0] if isinstance(peer, tuple) and peer else ""
        if not self.server.accepting:
            self.transport.close()
            return
        if self.address not in self.server.authenticator.allow:
            log.warning("SMPP: connection from %s refused: not in [smpp_server].allow",
                        self.address or "?")
            self.transport.close()
            return
        self.server.connections.add(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        events = self.session.feed(data, self.loop.time())
        if events:
            self._handle(events)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._timer:
            self._timer.cancel()
        for assembly in self._assemblies.values():
            assembly.timer.cancel()
        self._assemblies.clear()
        tokens = self.session.close()
        account = self.account
        if account is not None:
            with contextlib.suppress(ValueError):
                account.sessions.remove(self)
            log.info("SMPP: %s (%s) from %s disconnected%s", account.name, self.session.mode,
                     self.address, f", {len(tokens)} deliver_sm unanswered" if tokens else "")
            self.server.requeue(tokens)
        self.account = None

    def flush(self) -> None:
        data = self.session.data_to_send()
        if data and self.transport and not self.transport.is_closing():
            self.transport.write(data)
        if self.session.state is self.session.CLOSED:
            if self.transport:
                self.transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        deadline = self.session.next_deadline()
        timer = self._timer
        if deadline is None or (timer is not None and timer.when() <= deadline):
            return
        if timer:
            timer.cancel()
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        events = self.session.handle_timer(self.loop.time())
        if events:
            self._handle(events)
        self.flush()

    def close(self) -> None:
        if self.transport:
            self.transport.close()

    # -- events ------------------------------------------------------------------------------

    def _handle(self, events: list[Any]) -> None:
        for ev in events:
            t = type(ev)
            if t is SubmitRequested:
                self._on_submit(ev.sequence, ev.sm)
            elif t is DeliverAnswered:
                self.server.answered(self, ev.token, ev.status)
            elif t is BindRequested:
                self._spawn(self._bind(ev))
            elif t is ResponseTimeout:
                if ev.token is not None:
                    log.warning("SMPP: %s gave no deliver_sm_resp within %.0fs; sending it again",
                                self._who(), self.server.config.response_timeout)
                    self.server.requeue([ev.token])
                elif self.transport:
                    self.transport.close()  # our unbind went unanswered
            elif t is Inactive:
                log.info("SMPP: %s silent for %.0fs; closing", self._who(), ev.idle)
                if self.session.bound:
                    self.session.unbind(self.loop.time())
                elif self.transport:
                    self.transport.close()
            elif t is Unbound:
                log.info("SMPP: %s unbound%s", self._who(), "" if ev.by_peer else " (ours)")
            elif t is ProtocolError:
                log.warning("SMPP: %s: %s; closing", self._who(), ev.reason)
            elif t is Unexpected:
                log.warning("SMPP: %s: %s", self._who(), ev.reason)

    def _who(self) -> str:
        name = self.account.name if self.account else "unbound client"
        return f"{name} from {self.address}"

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, ev: BindRequested) -> None:
        status = await self.server.bind(self, ev)
        if self.transport is None or self.transport.is_closing():
            return
        if status:
            self.session.refuse_bind(status)
        else:
            self.session.accept_bind()
            self.server.pump(self.account)
        self.flush()

    # -- submit_sm -------------------------------------------------------------------------

    def _on_submit(self, seq: int, sm: codec.DeliverSm) -> None:
        account = self.account
        assert account is not None  # the session accepts submit_sm only when bound
        now = time.time()
        try:
            if account.bucket is not None and not account.bucket.take(self.loop.time()):
                raise Refused(codec.ESME_RTHROTTLED, "over the account's rate")
            msg = read_submit(sm, now)
            if msg.concat is not None and msg.concat[1] > 1:
                self._add_part(msg, seq)
                return
            request = msg.request(account.name, _text(msg.coding, msg.data))
        except Refused as exc:
            self._refuse([seq], exc.status, exc.reason)
            return
        self._spawn(self._commit([seq], request))

    def _add_part(self, msg: ShortMessage, seq: int) -> None:
        assert msg.concat is not None
        ref, total, number = msg.concat
        key = (msg.to, msg.sender, ref, total)
        assembly = self._assemblies.get(key)
        if assembly is None:
            timer = self.loop.call_later(self.server.config.reassembly_timeout,
                                         self._incomplete, key)
            assembly = self._assemblies[key] = _Assembly({}, timer)
        old = assembly.parts.get(number)
        if old is not None:  # the client sent this part again: answer the first copy now
            self._refuse([old[1]], codec.ESME_RSUBMITFAIL, f"part {number} of {total} again")
        assembly.parts[number] = (msg, seq)
        if len(assembly.parts) < total:
            return
        del self._assemblies[key]
        assembly.timer.cancel()
        ordered = [assembly.parts[n] for n in sorted(assembly.parts)]
        seqs = [s for _, s in ordered]
        first = ordered[0][0]
        try:
            if len({p.coding for p, _ in ordered}) == 1:
                text = _text(first.coding, b"".join(p.data for p, _ in ordered))
            else:
                text = "".join(_text(p.coding, p.data) for p, _ in ordered)
        except Refused as exc:
            self._refuse(seqs, exc.status, exc.reason)
            return
        self._spawn(self._commit(seqs, first.request(self.account.name if self.account else "",
                                                     text)))

    def _incomplete(self, key: tuple[str, str | None, int, int]) -> None:
        assembly = self._assemblies.pop(key, None)
        if assembly is None:
            return
        got = sorted(assembly.parts)
        self._refuse([s for _, s in assembly.parts.values()], codec.ESME_RSUBMITFAIL,
                     f"long message to {key[0]} incomplete after "
                     f"{self.server.config.reassembly_timeout:g}s (parts {got} of {key[3]})")
        self.flush()

    def _refuse(self, seqs: list[int], status: int, reason: str) -> None:
        # a client over its rate would make a line per PDU: those only in debug
        log.log(logging.DEBUG if status == codec.ESME_RTHROTTLED else logging.INFO,
                "SMPP: %s: submit_sm refused %s: %s", self._who(), codec.status_name(status),
                reason)
        for seq in seqs:
            self.session.refuse_submit(seq, status)

    async def _commit(self, seqs: list[int], request: SubmitRequest) -> None:
        server = self.server
        server.submitting += 1
        try:
            accepted = await server.submit(request)
        except SubmitError as exc:
            self._refuse(seqs, submit_status(exc), f"{exc.field}: {exc.reason}")
        except Exception:
            log.exception("SMPP: %s: submit failed", self._who())
            for seq in seqs:
                self.session.refuse_submit(seq, codec.ESME_RSYSERR)
        else:
            mid = str(accepted[0].id)
            for seq in seqs:
                self.session.answer_submit(seq, mid)
        finally:
            server.submitting -= 1
            if not server.submitting:
                server.idle.set()
        self.flush()


# -- the listener ------------------------------------------------------------------------


class SmppServer:
    """The listening socket, the accounts' sessions and the outbox; a StatusListener."""

    def __init__(self, config: SmppServerConfig, *, accounts: Iterable[AccountConfig],
                 submit: Submit) -> None:
        accounts = list(accounts)
        problems = server_problems(config, accounts)
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.submit = submit
        self.authenticator = Authenticator(config.allow, accounts)
        self.throttle = AuthThrottle(config.auth_delay)
        overrides = {a.name: a for a in config.accounts}
        self.accounts: dict[str, _Account] = {}
        for a in accounts:
            o = overrides.get(a.name)
            rate = o.rate if o and o.rate is not None else config.rate
            self.accounts[a.name] = _Account(
                a.name, frozenset(o.binds if o and o.binds is not None else config.binds),
                o.max_binds if o and o.max_binds is not None else config.max_binds,
                TokenBucket(rate) if rate else None)
        self.host, self.port = split_hostport(config.listen)
        self.connections: set[SmppConnection] = set()
        self.accepting = False
        self.submitting = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._server: asyncio.AbstractServer | None = None
        self._outbox: Outbox | None = None
        self._retry: set[asyncio.TimerHandle] = set()
        self._mo_ref = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, store: Store) -> None:
        self._outbox = Outbox(store.engine, self._stored)
        waiting = await self._outbox.open()
        self._stored(waiting, wake=False)
        tls = None
        if self.config.tls_cert and self.config.tls_key:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SmppConnection(self), self.host,
                                                self.port, ssl=tls, reuse_address=True,
                                                backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self.accepting = True
        log.info("SMPP server on %s:%d%s; %d receipt(s)/MO waiting for their clients",
                 self.host, self.port, " (TLS)" if tls else "", len(waiting))

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let submits finish their commits (up to `grace`), unbind
        everyone; `close` follows once the links are down."""
        if self._server is None:
            return
        self.accepting = False
        self._server.close()
        try:
            await asyncio.wait_for(self.idle.wait(), grace)
        except TimeoutError:
            log.warning("SMPP: %d submit_sm still waiting after %.0fs; closing",
                        self.submitting, grace)
        now = asyncio.get_running_loop().time()
        for conn in list(self.connections):
            if conn.session.bound:
                conn.session.unbind(now)
                conn.flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(grace, 1.0)):
                while self.connections:
                    await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.close()
        for handle in self._retry:
            handle.cancel()
        await self._server.wait_closed()
        self._server = None

    async def close(self) -> None:
        """Write the outbox (after the links stopped: their last receipts are kept too)."""
        if self._outbox:
            await self._outbox.close()
            self._outbox = None

    # -- binds and submits -----------------------------------------------------------------

    async def bind(self, conn: SmppConnection, ev: BindRequested) -> int:
        """Authenticate a bind and check the account's permissions; 0 or the status."""
        what = f"{ev.mode} bind as {ev.system_id[:16]!r} from {conn.address}"
        try:
            name = await self.authenticator.authenticate(
                Credentials(username=ev.system_id, password=ev.password), conn.address)
        except SubmitError as exc:
            count, delay = self.throttle.failed(conn.address)
            log.warning("SMPP: %s refused (%s); %d in a row from there, answering after %.1fs",
                        what, exc.reason, count, delay)
            await asyncio.sleep(delay)
            return codec.ESME_RINVPASWD if exc.kind == "auth" else codec.ESME_RBINDFAIL
        self.throttle.succeeded(conn.address)
        account = self.accounts[name]
        if ev.mode not in account.binds:
            log.warning("SMPP: %s refused: account may bind as %s only", what,
                        ", ".join(sorted(account.binds)))
            return codec.ESME_RBINDFAIL
        if len(account.sessions) >= account.max_binds:
            log.warning("SMPP: %s refused: %d sessions already (max_binds)", what,
                        len(account.sessions))
            return codec.ESME_RBINDFAIL
        if not self.accepting or conn.transport is None or conn.transport.is_closing():
            return codec.ESME_RBINDFAIL  # stopping, or the client left while we checked
        account.sessions.append(conn)
        conn.account = account
        log.info("SMPP: %s accepted (%d session(s))", what, len(account.sessions))
        return 0

    # -- receipts and MO -----------------------------------------------------------------

    def on_status(self, change: StatusChange) -> None:
        """StatusListener: a receipt for an SMPP client that asked for one (on the loop)."""
        msg = change.message
        if msg.origin != _ORIGIN or not msg.dlr_mask or msg.account not in self.accounts:
            return
        bit = _STATUS_BIT.get(change.status)
        if bit is None or not msg.dlr_mask & bit or self._outbox is None:
            return
        self._outbox.add(msg.account, receipt_body(change))

    async def deliver_mo(self, account: str, inbound: Inbound) -> bool:
        """For the inbound router (target `smpp:<account>`): store the MO as deliver_sm
        for the account's receiver binds; True once durably queued, False for an account
        the server does not know (or a server not started)."""
        if account not in self.accounts or self._outbox is None:
            return False
        self._mo_ref = (self._mo_ref + 1) & 0xFF
        loop = asyncio.get_running_loop()
        done: list[asyncio.Future[None]] = []
        for body in mo_bodies(inbound, self._mo_ref):
            fut = loop.create_future()
            self._outbox.add(account, body, fut)
            done.append(fut)
        await asyncio.gather(*done)
        return True

    def _stored(self, rows: list[Row], wake: bool = True) -> None:
        touched = set()
        for row in rows:
            account = self.accounts.get(row[1])
            if account is None:  # an account removed from the config: kept, not sent
                continue
            account.queue.append(row)
            touched.add(account.name)
        if wake:
            for name in touched:
                self.pump(self.accounts[name])

    def pump(self, account: _Account | None) -> None:
        """Send what waits for `account` to its receiving sessions, round robin."""
        if account is None or not account.queue:
            return
        now = asyncio.get_running_loop().time()
        while account.queue:
            receivers = [c for c in account.sessions if c.session.window_room > 0]
            if not receivers:
                return
            for conn in receivers:
                if not account.queue or conn.session.window_room <= 0:
                    continue
                row = account.queue.popleft()
                conn.session.deliver(row[2], row, now)
            for conn in receivers:
                conn.flush()

    def answered(self, conn: SmppConnection, row: Row, status: int) -> None:
        account = conn.account
        if status == 0 or codec.status_kind(status) is FailureKind.PERMANENT:
            if status:
                log.warning("SMPP: %s refused deliver_sm with %s; dropped", conn._who(),
                            codec.status_text(status))
            assert self._outbox is not None
            self._outbox.remove(row[0])
            self.pump(account)
            return
        log.info("SMPP: %s answered deliver_sm %s; again in %.0fs", conn._who(),
                 codec.status_text(status), self.config.retry_delay)
        def again() -> None:
            self._retry.discard(handle)
            self.requeue([row])

        handle = asyncio.get_running_loop().call_later(self.config.retry_delay, again)
        self._retry.add(handle)
        self.pump(account)

    def requeue(self, rows: list[Row]) -> None:
        """Rows whose deliver_sm went unanswered go first again, in their order."""
        for row in reversed(rows):
            self.accounts[row[1]].queue.appendleft(row)
        for name in {row[1] for row in rows}:
            self.pump(self.accounts[name])


def config_problems(config: Config) -> list[str]:
    """What `omnigate check-config` says about [smpp_server] beyond its own fields."""
    return server_problems(config.smpp_server, config.accounts) if config.smpp_server else []


def server_problems(config: SmppServerConfig, accounts: list[AccountConfig]) -> list[str]:
    names = {a.name for a in accounts}
    problems = [f"smpp_server.accounts[{i}].name: no [[accounts]] named {a.name!r}"
                for i, a in enumerate(config.accounts) if a.name not in names]
    if not accounts:
        problems.append("smpp_server: needs [[accounts]] to bind with (system_id = name)")
    problems += [f"smpp_server.tls_{k}: cannot read {v}" for k, v in
                 (("cert", config.tls_cert), ("key", config.tls_key)) if v and not _readable(v)]
    return problems


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False
