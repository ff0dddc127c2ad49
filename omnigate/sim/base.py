"""What the SMPP, CIMD2 and UCP simulators share: faults, recording, DLR queues, CLI.

Each protocol module (`sim.smpp`, `sim.cimd2`, `sim.ucp`) keeps its framing,
parsing, encoding and strictness rules, and subclasses `Simulator` and
`SimConnection` here for the rest: the fault options, the record of accepted
submits (a bounded deque, counters and the JSONL record file), `wait_for`,
`messages()` reassembly, the asyncio server's lifecycle, the DLR heap with the
DLRs held for an owner that is not bound, and the command-line plumbing.

Nothing here is on the per-PDU path except `_accept` (one call per accepted
submit, as before) and `SimConnection._drop_due` (only with `drop_after`): the
SMPP simulator must keep its ceiling (`bench/sim_ceiling.py`).
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import heapq
import itertools
import logging
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypedDict, TypeVar

import orjson

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "FAULTS",
    "SimConnection",
    "Simulator",
    "SimulatorError",
    "SimulatorOptions",
    "add_common_arguments",
    "cli_main",
    "common_options",
    "parse_hostport",
    "serve",
]


class SimulatorError(RuntimeError):
    """The simulator cannot do what it was asked (no peer bound, MO refused, stopped)."""


# The attributes `set_faults` may change at run time, with their types.
FAULTS: dict[str, type] = {
    "throttle_every": int,
    "fail_every": int,
    "drop_after": int,
    "response_delay": float,
    "no_response": bool,
    "dlr": bool,
    "dlr_delay": float,
    "dlr_status": str,
}

HELD_DLRS_MAX = 100_000  # DLRs kept per owner while nothing can take them
RECORD_FLUSH_S = 1.0  # the record file is buffered; flushed this often


class Recorded(Protocol):
    """What every simulator's RecordedSubmit offers to the shared code."""

    @property
    def destination(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def concat(self) -> tuple[int, int, int] | None: ...
    def as_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Recorded)
C = TypeVar("C", bound="SimConnection[Any]")


class SimulatorOptions(TypedDict, total=False):
    """The constructor options every simulator takes (keyword-only)."""

    host: str
    port: int
    password: str | None
    dlr: bool
    dlr_delay: float
    dlr_status: str | None
    record: str | Path | None
    throttle_every: int
    fail_every: int
    drop_after: int
    response_delay: float
    no_response: bool
    keep: int


# --------------------------------------------------------------------------
# One connection
# --------------------------------------------------------------------------


class SimConnection(asyncio.Protocol, abc.ABC, Generic[R]):
    """The SMSC side of one TCP connection; the protocol module parses and answers."""

    def __init__(self, sim: Simulator[R, Any]) -> None:
        self.sim = sim
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.submits = 0  # submits received on this connection (drop_after)
        self._buf = b""
        self._closed = False

    @property
    @abc.abstractmethod
    def receives_for(self) -> str | None:
        """The owner whose DLRs this connection takes (bound to receive), else None."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.sim._connections.add(self)
        self.sim.log.debug("%s[%s] connected", self.sim.LOG_PREFIX, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.sim._connections.discard(self)

    def pause_writing(self) -> None:
        # The peer is not reading our responses: stop reading its requests.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self._closed:
            self.transport.resume_reading()

    def write(self, data: bytes) -> bool:
        if self._closed or self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def _drop_due(self) -> bool:
        """True once this connection has had its `drop_after` submits."""
        drop_after = self.sim.drop_after
        if drop_after and self.submits >= drop_after:
            self.sim.log.info("%s[%s] drop_after=%d reached; closing", self.sim.LOG_PREFIX,
                              self.peer, drop_after)
            return True
        return False


# --------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------


class Simulator(abc.ABC, Generic[R, C]):
    """An SMSC on a real TCP port: faults, recording, DLR scheduling, lifecycle.

    A subclass names itself (`NAME`, `LOG_PREFIX`, `UNITS`, `log`), its DLR
    outcomes (`DLR_STATUSES`, `DLR_STATUS_DEFAULT`), how to make a connection
    (`_connection`), which accepted submits want a DLR (`_wants_dlr`), whom a
    DLR belongs to (`_owner`), the DLR frames (`_dlr_frames`) and how parts of
    one message join (`_join`).
    """

    NAME: ClassVar[str]  # "SMSC simulator": in logs, errors and the CLI banner
    LOG_PREFIX: ClassVar[str]  # "SMSC-SIM": per-connection log lines
    UNITS: ClassVar[str]  # "submit_sm": what wait_for counts
    DLR_STATUSES: ClassVar[Mapping[str, Any]]  # names `dlr_status` may take
    DLR_STATUS_DEFAULT: ClassVar[str]
    log: ClassVar[logging.Logger]

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        password: str | None = None,
        dlr: bool = False,
        dlr_delay: float = 0.0,
        dlr_status: str | None = None,
        record: str | Path | None = None,
        throttle_every: int = 0,
        fail_every: int = 0,
        drop_after: int = 0,
        response_delay: float = 0.0,
        no_response: bool = False,
        keep: int = 1_000_000,
    ) -> None:
        if dlr_status is None:
            dlr_status = self.DLR_STATUS_DEFAULT
        if dlr_status not in self.DLR_STATUSES:
            raise ValueError(f"dlr_status must be one of {', '.join(self.DLR_STATUSES)}")
        self.host = host
        self.port = port
        self.password = password
        self.dlr = dlr
        self.dlr_delay = dlr_delay
        self.dlr_status = dlr_status
        self.record = Path(record) if record is not None else None
        self.throttle_every = throttle_every
        self.fail_every = fail_every
        self.drop_after = drop_after
        self.response_delay = response_delay
        self.no_response = no_response
        self.keep = keep

        self.submits: deque[R] = deque(maxlen=keep)
        self.submit_count = 0  # accepted submits, even beyond `keep`
        self.received_count = 0  # valid submits (the fault counter)
        self.throttled_count = 0
        self.failed_count = 0
        self.rejected_count = 0  # malformed submits
        self.dlr_count = 0  # DLRs written
        self.mo_count = 0  # MO parts written

        self._mo_ref = itertools.count(1)
        self._rr = itertools.count()  # MO receivers take turns
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.Server | None = None
        self._connections: set[C] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._record_file: Any = None
        self._flush_handle: asyncio.TimerHandle | None = None
        # DLRs: a heap of (due, n, record, origin connection) and one timer.
        self._dlrs: list[tuple[float, int, R, C]] = []
        self._dlr_n = itertools.count()
        self._dlr_timer: asyncio.TimerHandle | None = None
        self._dlr_due = float("inf")
        self._held: dict[str, deque[R]] = {}  # owner -> DLRs while none of its binds takes them

    # protocol hooks ----------------------------------------------------------

    @abc.abstractmethod
    def _connection(self) -> C:
        """A new connection object of the protocol."""

    @abc.abstractmethod
    def _wants_dlr(self, rec: R) -> bool:
        """Whether an accepted submit asks for a DLR of the outcome `dlr_status`."""

    @abc.abstractmethod
    def _owner(self, rec: R) -> str:
        """The bind (system_id, user) whose connections take this submit's DLR."""

    @abc.abstractmethod
    def _dlr_frames(self, conn: C, recs: list[R]) -> list[bytes]:
        """The protocol's DLR frames for these submits, to one connection."""

    def _join(self, parts: list[R]) -> str:
        """The text of a concatenated message from its parts, in order."""
        return "".join(p.text for p in parts)

    # lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.record is not None:
            self._record_file = self.record.open("ab", buffering=1 << 16)
            self._flush_handle = self._loop.call_later(RECORD_FLUSH_S, self._flush_record)
        self._server = await self._loop.create_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.log.info("%s listening on %s:%d", self.NAME, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        for handle in (self._dlr_timer, self._flush_handle):
            if handle is not None:
                handle.cancel()
        self._dlr_timer = self._flush_handle = None
        self._dlrs.clear()
        self._dlr_due = float("inf")
        if self._record_file is not None:
            self._record_file.close()
            self._record_file = None
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(SimulatorError("simulator stopped"))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def drop_connections(self) -> None:
        """Cut every connection at once (RST, nothing flushed), like a network failure."""
        conns = list(self._connections)
        if conns:
            self.log.info("%s dropping %d connection(s)", self.NAME, len(conns))
        for conn in conns:
            conn.abort()
        await asyncio.sleep(0)  # let connection_lost run

    @property
    def connections(self) -> int:
        return len(self._connections)

    # faults ------------------------------------------------------------------

    def faults(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FAULTS}

    def set_faults(self, **values: Any) -> None:
        """Set fault attributes by name, with type checks (for the control endpoint)."""
        checked = {}
        for name, value in values.items():
            kind = FAULTS.get(name)
            if kind is None:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif kind is str:
                if value not in self.DLR_STATUSES:
                    raise ValueError(f"{name} must be one of {', '.join(self.DLR_STATUSES)}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
            elif kind is int and value != int(value):
                raise ValueError(f"{name} must be a whole number")
            checked[name] = kind(value)
        for name, value in checked.items():
            setattr(self, name, value)
        self.log.info("%s faults set: %s", self.NAME, values)

    def stats(self) -> dict[str, Any]:
        """Counters and faults; a subclass adds its own (binds, violations)."""
        return {
            "submit_count": self.submit_count,
            "received_count": self.received_count,
            "throttled_count": self.throttled_count,
            "failed_count": self.failed_count,
            "rejected_count": self.rejected_count,
            "dlr_count": self.dlr_count,
            "dlr_pending": len(self._dlrs) + sum(len(q) for q in self._held.values()),
            "mo_count": self.mo_count,
            "connections": self.connections,
            "kept": len(self.submits),
            "faults": self.faults(),
        }

    # recording ---------------------------------------------------------------

    def _accept(self, rec: R, conn: C) -> None:
        """Record an accepted submit and schedule its DLR (waiters are woken per read)."""
        self.submits.append(rec)
        self.submit_count += 1
        if self._record_file is not None:
            self._record_file.write(orjson.dumps(rec.as_dict()) + b"\n")
        if self.dlr and self._wants_dlr(rec):
            due = self._loop.time() + self.response_delay + self.dlr_delay
            heapq.heappush(self._dlrs, (due, next(self._dlr_n), rec, conn))
            if due < self._dlr_due:
                if self._dlr_timer is not None:
                    self._dlr_timer.cancel()
                self._dlr_due = due
                self._dlr_timer = self._loop.call_at(due, self._send_due_dlrs)

    def _flush_record(self) -> None:
        if self._record_file is not None:
            self._record_file.flush()
            self._flush_handle = self._loop.call_later(RECORD_FLUSH_S, self._flush_record)

    def _wake_waiters(self) -> None:
        count = self.submit_count
        for want, fut in self._waiters:
            if count >= want and not fut.done():
                fut.set_result(None)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Wait until submit_count >= count; TimeoutError says how far it got."""
        if self.submit_count >= count:
            return
        entry = (count, self._loop.create_future())
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[1]
        except TimeoutError:
            raise TimeoutError(f"{self.NAME} got {self.submit_count} of {count} {self.UNITS} "
                               f"in {timeout}s") from None
        finally:
            self._waiters.remove(entry)

    def messages(self) -> list[tuple[str, str, str]]:
        """(destination, source, text) per message, concatenated parts reassembled.

        A message takes the place of its first part; one missing a part is left
        out. A part number seen again in an open group starts a new message (the
        reference was reused). `_join` says how parts of one coding join.
        """
        slots: list[tuple[str, str, str] | None] = []
        groups: dict[tuple[str, str, int, int], tuple[int, dict[int, R]]] = {}
        for rec in self.submits:
            concat = rec.concat
            if concat is None or concat[1] < 2:
                slots.append((rec.destination, rec.source, rec.text))
                continue
            ref, total, seq = concat
            key = (rec.source, rec.destination, ref, total)
            group = groups.get(key)
            if group is None or seq in group[1]:
                group = groups[key] = (len(slots), {})
                slots.append(None)
            group[1][seq] = rec
            if len(group[1]) == total and all(s in group[1] for s in range(1, total + 1)):
                parts = [group[1][s] for s in range(1, total + 1)]
                slots[group[0]] = (rec.destination, rec.source, self._join(parts))
                del groups[key]
        return [s for s in slots if s is not None]

    # DLRs --------------------------------------------------------------------

    def _send_due_dlrs(self, merge: tuple[C, list[bytes]] | None = None) -> None:
        """Write every due DLR, one write per connection per tick.

        `merge` is (connection, its pending output) when called from
        data_received: DLRs for that connection then join the same write as
        the responses, after them.
        """
        if self._dlr_timer is not None:
            self._dlr_timer.cancel()
        self._dlr_timer = None
        self._dlr_due = float("inf")
        now = self._loop.time()
        heap = self._dlrs
        due: list[tuple[R, C]] = []
        while heap and heap[0][0] <= now:
            _, _, rec, conn = heapq.heappop(heap)
            due.append((rec, conn))
        if due:
            self._deliver_dlrs(due, merge)
        if heap:
            self._dlr_due = heap[0][0]
            self._dlr_timer = self._loop.call_at(self._dlr_due, self._send_due_dlrs)

    def _deliver_dlrs(self, due: Iterable[tuple[R, C]],
                      merge: tuple[C, list[bytes]] | None = None) -> None:
        """Send each DLR to a connection of its owner, or hold it until one binds."""
        batches: dict[C, list[R]] = {}
        targets: dict[tuple[C, str], C | None] = {}
        for rec, origin in due:
            owner = self._owner(rec)
            key = (origin, owner)
            if key not in targets:
                targets[key] = self._dlr_target(origin, owner)
            target = targets[key]
            if target is None:
                held = self._held.get(owner)
                if held is None:
                    held = self._held[owner] = deque(maxlen=HELD_DLRS_MAX)
                held.append(rec)
            else:
                batches.setdefault(target, []).append(rec)
        for conn, recs in batches.items():
            frames = self._dlr_frames(conn, recs)
            if merge is not None and conn is merge[0]:
                merge[1].extend(frames)
                self.dlr_count += len(recs)
            elif conn.write(b"".join(frames)):
                self.dlr_count += len(recs)

    def _dlr_target(self, origin: C, owner: str) -> C | None:
        """The origin if it takes the owner's DLRs, else another connection that does."""
        if origin.receives_for == owner and not origin._closed:
            return origin
        for conn in self._connections:
            if conn.receives_for == owner and not conn._closed:
                return conn
        return None

    def _flush_held(self, conn: C) -> None:
        """Send the DLRs held for the owner a connection just bound as."""
        owner = conn.receives_for
        held = self._held.pop(owner, None) if owner is not None else None
        if held:
            self.log.info("%s[%s] sending %d held DLR(s)", self.LOG_PREFIX, conn.peer, len(held))
            self._deliver_dlrs((rec, conn) for rec in held)

    def _mo_target(self, none_bound: str) -> C:
        """The next connection to take an MO (they take turns); SimulatorError if none."""
        conns = sorted((c for c in self._connections
                        if c.receives_for is not None and not c._closed), key=id)
        if not conns:
            raise SimulatorError(none_bound)
        return conns[next(self._rr) % len(conns)]

    async def _await_mo(self, futures: list[asyncio.Future[Any]], timeout: float,
                        no_answer: str) -> list[Any]:
        """The answers to the MO parts just written; SimulatorError after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                return list(await asyncio.gather(*futures))
        except TimeoutError:
            raise SimulatorError(f"{no_answer} within {timeout}s") from None
        finally:
            for fut in futures:
                fut.cancel()


# --------------------------------------------------------------------------
# Command line: `omnigate sim {smpp,cimd2,ucp} ...` (wired in by omnigate/cli.py)
# --------------------------------------------------------------------------


def parse_hostport(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'HOST:PORT', '[v6]:PORT' or 'PORT' to (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = default_host, value
    host = host.strip("[]") or default_host
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} is out of range")
    return host, number


def add_common_arguments(
    parser: argparse.ArgumentParser,
    sim: type[Simulator[Any, Any]],
    *,
    port: int,
    peers: str,  # who connects: "ESMEs"
    logins: str,  # "binds"
    unit: str,  # one submit: "submit_sm"
    response: str,  # "submit_sm_resp"
    throttle: str,  # the throttling answer: "ESME_RTHROTTLED"
    fail: str,  # the permanent error: "ESME_RINVDSTADR (permanent)"
    dlr: str,  # --dlr help
    dlr_delay: str,  # --dlr-delay help
    dlr_status: str,  # --dlr-status help
) -> None:
    """The options every simulator has; help in the protocol's own words."""
    add = parser.add_argument
    add("--listen", type=parse_hostport, default=("127.0.0.1", port), metavar="HOST:PORT",
        help=f"where {peers} connect (default 127.0.0.1:{port})")
    add("--password", help=f"accept {logins} only with this password")
    add("--dlr", action="store_true", help=dlr)
    add("--dlr-delay", type=float, default=0.0, metavar="S", help=dlr_delay)
    add("--dlr-status", default=sim.DLR_STATUS_DEFAULT, choices=list(sim.DLR_STATUSES),
        help=dlr_status)
    add("--record", metavar="FILE.jsonl", help=f"append one JSON line per accepted {unit}")
    add("--control", metavar="HOST:PORT",
        help="HTTP control endpoint: POST /mo, GET /submits, GET /stats, POST /faults")
    add("--throttle-every", type=int, default=0, metavar="N",
        help=f"answer every Nth {unit} with {throttle}")
    add("--fail-every", type=int, default=0, metavar="N", help=f"answer every Nth {unit} with {fail}")
    add("--drop-after", type=int, default=0, metavar="N",
        help=f"close each connection after its Nth {unit}")
    add("--response-delay", type=float, default=0.0, metavar="S",
        help=f"send every {response} S seconds late")
    add("--no-response", action="store_true",
        help=f"never answer {sim.UNITS} (response-timeout tests)")
    add("--keep", type=int, default=100_000, metavar="N",
        help="recorded submits kept in memory (default 100000)")


def common_options(args: argparse.Namespace) -> SimulatorOptions:
    """The constructor options of `add_common_arguments`' parsed arguments."""
    host, port = args.listen
    return SimulatorOptions(
        host=host, port=port, password=args.password, dlr=args.dlr, dlr_delay=args.dlr_delay,
        dlr_status=args.dlr_status, record=args.record, throttle_every=args.throttle_every,
        fail_every=args.fail_every, drop_after=args.drop_after,
        response_delay=args.response_delay, no_response=args.no_response, keep=args.keep)


async def serve(sim: Simulator[Any, Any], control: str | None = None, *,
                ready: asyncio.Event | None = None) -> None:
    """Start the simulator (and its control endpoint) and run until cancelled.

    `ready` is set once both listen, for callers that must know (tests).
    """
    await sim.start()
    runner = None
    try:
        print(f"{sim.NAME} listening on {sim.host}:{sim.port}", flush=True)
        if control:
            from omnigate.sim.control import start_control

            host, port = parse_hostport(control)
            runner, bound_port = await start_control(sim, host, port)
            print(f"{sim.NAME} control on http://{host}:{bound_port}/", flush=True)
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await sim.stop()


def cli_main(prog: str, description: str | None,
             add_arguments: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], Awaitable[None]],
             argv: list[str] | None = None) -> None:
    """`python -m omnigate.sim.<protocol>`: parse, log, run until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:  # uvloop roughly halves the simulator's CPU per PDU (bench/sim_ceiling.py)
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as r:
        r.run(_run_until_signal(run, args))


async def _run_until_signal(run: Callable[[argparse.Namespace], Awaitable[None]],
                            args: argparse.Namespace) -> None:
    """run() until SIGINT or SIGTERM, then stop cleanly (the record file is flushed)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run(args)
