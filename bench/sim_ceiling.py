"""The SMPP simulator's own ceiling, so that benchmarks never measure it by mistake.

The simulator runs alone in a child process; this process is a raw asyncio
ESME that binds, then keeps `window` pre-encoded submit_sm outstanding until
N responses came back, answering receipts in the DLR scenario. It reports
responses per second (overall and per wall-clock second) and the CPU the
simulator process spent per submit_sm, which is what sets its ceiling: at
C µs per submit it saturates one core at 1e6/C submits per second.

    .venv/bin/python bench/sim_ceiling.py            # N=50,000, windows 10 and 100
    .venv/bin/python bench/sim_ceiling.py -n 20000 --windows 100 --loops uvloop --dlr

Writes bench/results/<date>-sim-ceiling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smpplib import smpp

HEADER = struct.Struct(">IIII")
SUBMIT_SM, SUBMIT_SM_RESP = 0x00000004, 0x80000004
DELIVER_SM, DELIVER_SM_RESP = 0x00000005, 0x80000005


class _Seq:
    sequence = 0

    def next_sequence(self) -> int:
        return 1


# ---------------------------------------------------------------- simulator process


def _sim_child(conn, loop_kind: str, dlr: bool) -> None:
    if loop_kind == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(_sim_main(conn, dlr))


async def _sim_main(conn, dlr: bool) -> None:
    from omnigate.sim.smpp import SmscSimulator

    sim = SmscSimulator(dlr=dlr, keep=200_000)
    await sim.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def on_command() -> None:
        command = conn.recv()
        if command == "stop":
            done.set()
        else:  # "measure"
            conn.send((time.process_time(), sim.submit_count, sim.dlr_count))

    loop.add_reader(conn.fileno(), on_command)
    conn.send(sim.port)
    await done.wait()
    loop.remove_reader(conn.fileno())
    await sim.stop()


# ---------------------------------------------------------------- the ESME


class Blaster(asyncio.Protocol):
    """Keeps `window` submit_sm outstanding; counts responses per wall-clock second."""

    def __init__(self, pdus: list[bytes], window: int, done: asyncio.Future) -> None:
        self.pdus, self.window, self.done = pdus, window, done
        self.sent = self.acked = self.errors = self.receipts = 0
        self.buf = b""
        self.per_second: dict[int, int] = {}
        self.bound = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def start(self) -> None:
        self.started = time.perf_counter()
        self._send(self.window)

    def _send(self, k: int) -> None:
        k = min(k, len(self.pdus) - self.sent)
        if k > 0:
            self.transport.write(b"".join(self.pdus[self.sent : self.sent + k]))
            self.sent += k

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
        pos, n, acks, out = 0, len(data), 0, []
        while n - pos >= 16:
            length, command_id, status, seq = HEADER.unpack_from(data, pos)
            if n - pos < length:
                break
            if command_id == SUBMIT_SM_RESP:
                acks += 1
                if status:
                    self.errors += 1
            elif command_id == DELIVER_SM:
                self.receipts += 1
                out.append(HEADER.pack(17, DELIVER_SM_RESP, 0, seq) + b"\0")
            elif not self.bound.done():
                self.bound.set_result(status)
            pos += length
        self.buf = data[pos:]
        if out:
            self.transport.write(b"".join(out))
        if acks:
            self.acked += acks
            second = int(time.perf_counter() - self.started)
            self.per_second[second] = self.per_second.get(second, 0) + acks
            self._send(acks)
            if self.acked == len(self.pdus) and not self.done.done():
                self.done.set_result(time.perf_counter() - self.started)


def encode_submits(n: int, dlr: bool) -> list[bytes]:
    template = smpp.make_pdu(
        "submit_sm",
        client=_Seq(),
        source_addr="omnigate",
        source_addr_ton=5,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="4915112345678",
        short_message=b"Benchmark message, about forty octets.",
        registered_delivery=1 if dlr else 0,
    ).generate()
    body = template[16:]
    return [HEADER.pack(len(template), SUBMIT_SM, 0, seq) + body for seq in range(1, n + 1)]


async def blast(port: int, pdus: list[bytes], window: int, mode: str) -> tuple[float, Blaster]:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    transport, proto = await loop.create_connection(
        lambda: Blaster(pdus, window, done), "127.0.0.1", port
    )
    bind = smpp.make_pdu(f"bind_{mode}", client=_Seq(), system_id="bench", password="bench")
    bind.sequence = 0x7FFFFFFF
    transport.write(bind.generate())
    assert await asyncio.wait_for(proto.bound, 5) == 0, "bind refused"
    proto.start()
    elapsed = await asyncio.wait_for(done, 600)
    if mode == "transceiver":  # let the last receipts arrive
        deadline = loop.time() + 5
        while proto.receipts < len(pdus) and loop.time() < deadline:
            await asyncio.sleep(0.05)
    transport.close()
    return elapsed, proto


def _client_loop():
    """uvloop for the ESME when present, so the client is not what we measure."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_scenario(n: int, window: int, loop_kind: str, dlr: bool) -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_sim_child, args=(child, loop_kind, dlr), daemon=True)
    proc.start()
    try:
        port = parent.recv()
        pdus = encode_submits(n, dlr)
        parent.send("measure")
        cpu0, _, _ = parent.recv()
        client_cpu0 = time.process_time()
        mode = "transceiver" if dlr else "transmitter"
        with asyncio.Runner(loop_factory=_client_loop()) as runner:
            elapsed, proto = runner.run(blast(port, pdus, window, mode))
        client_cpu = time.process_time() - client_cpu0
        parent.send("measure")
        cpu1, submits, receipts = parent.recv()
        parent.send("stop")
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    sim_cpu = cpu1 - cpu0
    result = {
        "loop": loop_kind,
        "window": window,
        "dlr": dlr,
        "submits": n,
        "accepted": submits,
        "errors": proto.errors,
        "receipts_sent": receipts,
        "receipts_received": proto.receipts,
        "elapsed_s": round(elapsed, 3),
        "responses_per_s": round(n / elapsed),
        "per_second": [proto.per_second[s] for s in sorted(proto.per_second)],
        "sim_cpu_s": round(sim_cpu, 3),
        "sim_cpu_us_per_submit": round(sim_cpu / n * 1e6, 1),
        "sim_core_share": round(sim_cpu / elapsed, 2),
        "sim_ceiling_per_s_one_core": round(n / sim_cpu) if sim_cpu else None,
        "client_cpu_us_per_submit": round(client_cpu / n * 1e6, 1),
    }
    print(
        f"{loop_kind:8} window {window:4} dlr={dlr!s:5} {result['responses_per_s']:>7}/s "
        f"sim {result['sim_cpu_us_per_submit']:5} µs/submit "
        f"(core {result['sim_core_share']:.0%}, ceiling {result['sim_ceiling_per_s_one_core']}/s) "
        f"client {result['client_cpu_us_per_submit']} µs",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000, help="submit_sm per scenario")
    parser.add_argument("--windows", type=int, nargs="+", default=[10, 100])
    parser.add_argument(
        "--loops",
        nargs="+",
        default=["asyncio", "uvloop"],
        choices=["asyncio", "uvloop"],
        help="event loop of the simulator",
    )
    parser.add_argument(
        "--dlr",
        action="store_true",
        help="also run each case with receipts (transceiver, dlr_delay 0)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per case; the median is reported (the machine is shared)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    try:
        import uvloop  # noqa: F401
    except ImportError:
        args.loops = [x for x in args.loops if x != "uvloop"]

    load_before = os.getloadavg()
    scenarios = []
    for loop_kind in args.loops:
        for window in args.windows:
            for dlr in (False, True) if args.dlr else (False,):
                runs = [run_scenario(args.n, window, loop_kind, dlr) for _ in range(args.repeat)]
                runs.sort(key=lambda r: r["responses_per_s"])
                median = dict(runs[len(runs) // 2])
                median["runs_responses_per_s"] = [r["responses_per_s"] for r in runs]
                median["runs_sim_cpu_us_per_submit"] = sorted(
                    r["sim_cpu_us_per_submit"] for r in runs
                )
                scenarios.append(median)
    today = dt.date.today().isoformat()
    out = args.out or Path(__file__).parent / "results" / f"{today}-sim-ceiling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "sim-ceiling",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor(),
        },
        "note": "simulator alone in a child process; raw asyncio ESME (uvloop) in the parent "
        "with pre-encoded PDUs; sim_cpu is the simulator process's CPU time; each case is "
        "the median of `repeat` runs, all runs listed",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "scenarios": scenarios,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
