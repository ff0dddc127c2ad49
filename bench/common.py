"""Helpers shared by the bench/ scripts (a sibling module, not a package).

Each script puts bench/ on sys.path and imports from here: ports, /proc readings,
the daemon and simulator child processes, readiness and simulator counters over
HTTP, the HTTP load generators (aiohttp and wrk), the TOML of a one-SMPP-link
daemon, the counting LinkEvents of the link benches, medians and result files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from omnigate.carriers.base import Link, LinkState
    from omnigate.model import DeliveryReport, FailureKind, Inbound, Part

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_URL = os.environ.get("OMNIGATE_TEST_PG_URL",
                        "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


# ---------------------------------------------------------------- machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_reachable() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 5432)) == 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    return round(rss_kb(pid, "VmHWM") / 1024, 1)


def install_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def run_on_uvloop(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.Runner on uvloop when installed (the client must cost less than what it measures)."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


# ---------------------------------------------------------------- daemon and simulator processes


class Processes:
    """The simulator and daemon child processes of one run; all killed at exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = open(self.workdir / log, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=self.workdir,
                                stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def sim(self, port: int, control: int, dlr: bool) -> subprocess.Popen[bytes]:
        args = ["omnigate.sim.smpp", "--listen", f"127.0.0.1:{port}", "--system-id", "bench",
                "--password", "bench", "--control", f"127.0.0.1:{control}", "--keep", "1000"]
        return self.spawn(*args, *(["--dlr"] if dlr else []), log="sim.log")

    def daemon(self, config: Path) -> subprocess.Popen[bytes]:
        return self.spawn("omnigate", "run", "-c", str(config), log="daemon.log")

    def tail(self, log: str, lines: int = 15) -> str:
        path = self.workdir / log
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


@contextlib.contextmanager
def bench_dir(prefix: str, logs: Sequence[str] = ("daemon.log", "sim.log")
              ) -> Iterator[tuple[Path, Processes]]:
    """A temporary working directory and its processes: the logs' tails on failure, all
    processes stopped at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        procs = Processes(work)
        try:
            yield work, procs
        except Exception:
            print("\n".join(f"--- {log}\n{procs.tail(log)}" for log in logs), file=sys.stderr)
            raise
        finally:
            procs.stop_all()


async def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Until a simulator started as `proc` accepts connections on `port`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise SystemExit("the simulator did not start") from None
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------- configuration


def daemon_toml(store: str, http_port: int, traffic_log: str = "traffic.log") -> str:
    """The head of a daemon's configuration: log level, store, HTTP listener, traffic log."""
    return f"""
log_level = "warning"
[store]
url = "{store}"
[http]
listen = "127.0.0.1:{http_port}"
[traffic_log]
path = "{traffic_log}"
"""


def smpp_link_toml(port: int, *, name: str = "smsc1", window: int = 10, reconnect: bool = False,
                   exclusive: bool | None = None) -> str:
    """One [[links]] entry: an SMPP link to the simulator on `port` (bench/bench)."""
    text = f"""
[[links]]
name = "{name}"
type = "smpp"
hosts = ["127.0.0.1:{port}"]
system_id = "bench"
password = "bench"
window = {window}
"""
    if reconnect:
        text += "reconnect_min = 0.2\nreconnect_max = 1.0\n"
    if exclusive is not None:
        text += f"exclusive = {str(exclusive).lower()}\n"
    return text


def one_link_toml(port: int, *, window: int = 10, reconnect: bool = False) -> str:
    """The link `smsc1` to the simulator on `port` and the route sending everything to it."""
    return smpp_link_toml(port, window=window, reconnect=reconnect) + """[[routes]]
tiers = [["smsc1"]]
"""


def sqlite_gateway_toml(http_port: int, smsc_port: int, ingress: str, window: int = 10) -> str:
    """A daemon on SQLite (omnigate.db in its directory) with `ingress` (TOML of the listener
    under test) and one SMPP link to the simulator on `smsc_port`."""
    return (daemon_toml("sqlite+aiosqlite:///omnigate.db", http_port) + ingress
            + one_link_toml(smsc_port, window=window))


# ---------------------------------------------------------------- the daemon over HTTP


async def wait_ready(session: aiohttp.ClientSession, base: str, link_up: bool,
                     timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    body = await resp.json()
                    if body["links_up"] or not link_up:
                        return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise RuntimeError("daemon did not become ready; see daemon.log")


async def sim_count(session: aiohttp.ClientSession, control: int) -> int:
    async with session.get(f"http://127.0.0.1:{control}/stats") as resp:
        return int((await resp.json())["submit_count"])


async def wait_sim(session: aiohttp.ClientSession, control: int, target: int,
                   timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(aiohttp.ClientConnectionError):  # still starting
            if await sim_count(session, control) >= target:
                return time.monotonic()
        await asyncio.sleep(0.02)
    raise RuntimeError(f"SMSC got {await sim_count(session, control)} of {target} in {timeout}s")


def numbers(count: int, distinct: int) -> list[str]:
    return [f"070{1000000 + i % distinct:07d}" for i in range(count)]


async def blast(session: aiohttp.ClientSession, base: str, to: list[str], concurrency: int,
                rate: float | None = None) -> tuple[float, float, int]:
    """Send one sendsms per number; returns (start, end, refused)."""
    url = f"{base}/cgi-bin/sendsms"
    next_index = 0
    refused = 0
    start = time.monotonic()

    async def worker() -> None:
        nonlocal next_index, refused
        while next_index < len(to):
            i = next_index
            next_index += 1
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            async with session.get(url, params={"to": to[i], "text": f"bench message {i}"}) as r:
                await r.read()
                if r.status != 202:
                    refused += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return start, time.monotonic(), refused


# bench/accounts.py prepends the API key header to this script.
WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local n = 1000000 + counter % DISTINCT
  return wrk.format("GET", "/cgi-bin/sendsms?to=070" .. string.format("%07d", n)
                    .. "&text=bench+message+" .. counter)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d\\n", summary.requests, summary.errors.status))
end
"""


def wrk_blast(base: str, seconds: int, connections: int, distinct: int,
              workdir: Path) -> tuple[float, float, int, int]:
    """Full load from wrk (C, two threads): (start, end, requests, non-2xx)."""
    script = workdir / "sendsms.lua"
    script.write_text(WRK_SCRIPT.replace("DISTINCT", str(distinct)))
    start = time.monotonic()
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                          base], capture_output=True, text=True, check=True).stdout
    end = time.monotonic()
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    _, requests, bad = line.split()
    return start, end, int(requests), int(bad)


# ---------------------------------------------------------------- load from spawned processes


def client_main(work: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...],
                start_at: float, out: Any) -> None:
    """A spawned client process: waits for `start_at`, runs `work(*args)` on uvloop and puts
    (its result, this process's CPU seconds) on `out`."""
    install_uvloop()
    time.sleep(max(0.0, start_at - time.time()))  # every process starts together
    cpu0 = time.process_time()
    result = asyncio.run(work(*args))
    out.put((result, time.process_time() - cpu0))


def spawn_clients(work: Callable[..., Coroutine[Any, Any, Any]], arglists: list[tuple[Any, ...]],
                  delay: float) -> tuple[float, list[tuple[Any, float]]]:
    """One spawned process per argument tuple, all starting `delay` s from now (a spawned
    interpreter needs a moment to import); (the start as epoch seconds, their answers)."""
    ctx = multiprocessing.get_context("spawn")
    out: Any = ctx.Queue()
    start_at = time.time() + delay
    workers = [ctx.Process(target=client_main, args=(work, args, start_at, out))
               for args in arglists]
    for w in workers:
        w.start()
    results = [out.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    return start_at, results


# ---------------------------------------------------------------- links in this process


class CountingEvents:
    """LinkEvents that count; `done` is set once `want` parts are settled."""

    def __init__(self, want: int) -> None:
        from omnigate.carriers.base import LinkState

        self.want, self.sent, self.failed = want, 0, 0
        self.done = asyncio.Event()
        self.up = asyncio.Event()
        self.reasons: set[str] = set()
        self._up_state = LinkState.UP

    def on_sent(self, part: Part, carrier_ref: str) -> None:
        self.sent += 1
        if self.sent + self.failed >= self.want:
            self.done.set()

    def on_failed(self, part: Part, kind: FailureKind, reason: str) -> None:
        self.failed += 1
        self.reasons.add(reason)
        if self.sent + self.failed >= self.want:
            self.done.set()

    def on_mo(self, inbound: Inbound) -> None: ...
    def on_report(self, report: DeliveryReport) -> None: ...

    def on_state(self, link: Link, state: LinkState) -> None:
        if state is self._up_state:
            self.up.set()


def single_parts(messages: int, data: bytes) -> list[Part]:
    from omnigate.model import Part
    from omnigate.sms.coding import Coding

    return [Part(message_id=i, seq=1, total=1, recipient=f"4670{i:07d}", sender=None,
                 coding=Coding.GSM7, data=data, report=False) for i in range(messages)]


async def drive(link: Any, events: CountingEvents, parts: list[Part], idle: float,
                timeout: float) -> tuple[float, float]:
    """Feed `parts` as fast as `capacity()` allows, the way the dispatcher does, until all
    are settled; stops the link; (elapsed s, this process's CPU s)."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    i = 0
    while i < len(parts):
        room = link.capacity()
        for part in parts[i:i + room]:
            link.submit(part)
        i += room
        await asyncio.sleep(0 if room else idle)
    await asyncio.wait_for(events.done.wait(), timeout)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await link.stop()
    if events.failed:
        raise SystemExit(f"{events.failed} parts failed: {sorted(events.reasons)[:3]}")
    return elapsed, cpu


# ---------------------------------------------------------------- figures and results


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p))]


def medians(runs: list[dict[str, Any]], keys: list[str] | None = None) -> dict[str, Any]:
    """Median per key over runs; by default every numeric field of the first run."""
    if keys is None:
        keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def mode_summary(samples: list[dict[str, float]], rate: str) -> dict[str, Any]:
    """Accepted/s (median and runs), `rate` median, daemon CPU median, refused in all."""
    return {
        "accepted_per_s_median": round(statistics.median(s["accepted_per_s"] for s in samples)),
        "accepted_per_s_runs": [round(s["accepted_per_s"]) for s in samples],
        f"{rate}_median": round(statistics.median(s[rate] for s in samples)),
        "daemon_cpu_us_per_message_median": round(statistics.median(
            s["daemon_cpu_us_per_message"] for s in samples), 1),
        "refused": sum(int(s["refused"]) for s in samples),
    }


def parse_quick(parser: argparse.ArgumentParser, help: str, **quick: Any) -> argparse.Namespace:
    """Adds --quick (last) and parses; with --quick the options in `quick` take those values."""
    parser.add_argument("--quick", action="store_true", help=help)
    args = parser.parse_args()
    if args.quick:
        for name, value in quick.items():
            setattr(args, name, value)
    return args


def report_head(args: argparse.Namespace) -> dict[str, Any]:
    return {"date": date.today().isoformat(),
            "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
            "args": vars(args)}


def write_results(name: str, doc: dict[str, Any]) -> Path:
    """bench/results/NAME, as indented JSON."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def write_report(name: str, doc: dict[str, Any]) -> None:
    """bench/results/NAME, and where it went relative to the repository."""
    print(f"written to {write_results(name, doc).relative_to(ROOT)}")


def dated_name(day: str, bench: str, only: str | None) -> str:
    """DAY-BENCH.json, or DAY-BENCH-ONLY.json for one part."""
    return f"{day}-{bench}{'-' + only if only else ''}.json"


def write_sqlite_report(name: str, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """The date, machine and options with `result` under "sqlite"; written and printed."""
    doc = {**report_head(args), "sqlite": result}
    path = write_results(name, doc)
    print(json.dumps(doc, indent=2))
    print(f"written to {path}")
