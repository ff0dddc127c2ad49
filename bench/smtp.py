"""SMTP ingress benchmark: mails/s accepted and SMS/s end to end at the simulator.

The daemon (`omnigate run`) and the SMPP simulator run as separate processes on
loopback, as in bench/throughput.py (whose process helpers this reuses). The
load is `--sessions` concurrent SMTP sessions (20 by default), each a
persistent connection sending one mail after the other (MAIL, RCPT, DATA; no
pipelining, as a relay such as Postfix does without PIPELINING), one
recipient per mail. Clients are aiosmtplib on asyncio, spread over
`--procs` processes so the client is not the bottleneck of one core.

Measured, on SQLite (the default store):

* mails/s accepted: mails answered 250 / time to the last 250;
* SMS/s end to end: the same mails / time until the simulator has them all;
* the daemon's CPU time per mail (steadier than rates on a shared machine).

Writes bench/results/<date>-smtp.json and prints it.
Usage: python bench/smtp.py [--mails 6000] [--sessions 20] [--procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import (  # a sibling script, not a package
    RESULTS,
    Processes,
    cpu_seconds,
    free_port,
    rss_kb,
    sim_count,
    wait_ready,
    wait_sim,
)

DOMAIN = "sms.example.com"


def write_config(path: Path, *, http_port: int, smtp_port: int, smsc_port: int) -> None:
    path.write_text(f"""
log_level = "warning"
[store]
url = "sqlite+aiosqlite:///omnigate.db"
[http]
listen = "127.0.0.1:{http_port}"
[smtp]
listen = "127.0.0.1:{smtp_port}"
domains = ["{DOMAIN}"]
[traffic_log]
path = "traffic.log"
[[links]]
name = "smsc1"
type = "smpp"
hosts = ["127.0.0.1:{smsc_port}"]
system_id = "bench"
password = "bench"
window = 10
[[routes]]
tiers = [["smsc1"]]
""")


def mail_bytes(i: int) -> tuple[str, bytes]:
    number = f"070{1000000 + i % 100000:07d}"
    return number, (f"From: bench@example.com\r\nTo: {number}@{DOMAIN}\r\n"
                    f"Subject: bench {i}\r\nMessage-ID: <{i}@bench>\r\n\r\n"
                    f"bench message {i}\r\n").encode()


async def _sessions(port: int, sessions: int, first: int, count: int) -> tuple[int, float]:
    """`sessions` persistent connections sending mails first..first+count; (refused, end)."""
    import aiosmtplib

    next_i = first
    refused = 0

    async def session() -> None:
        nonlocal next_i, refused
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                                 local_hostname="bench", timeout=30)
        await client.connect()
        try:
            while next_i < first + count:
                i = next_i
                next_i += 1
                number, data = mail_bytes(i)
                try:
                    await client.sendmail("bench@example.com", [f"{number}@{DOMAIN}"], data)
                except aiosmtplib.SMTPException:
                    refused += 1
        finally:
            await client.quit()

    await asyncio.gather(*(session() for _ in range(sessions)))
    return refused, time.time()


def _client_process(port: int, sessions: int, first: int, count: int, start_at: float,
                    out: Any) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    time.sleep(max(0.0, start_at - time.time()))  # every process starts together
    cpu0 = time.process_time()
    refused, end = asyncio.run(_sessions(port, sessions, first, count))
    out.put((refused, end, time.process_time() - cpu0))


def load(port: int, mails: int, sessions: int, procs: int, first: int) -> dict[str, Any]:
    """Run the clients; wall-clock start and end as epoch seconds."""
    ctx = multiprocessing.get_context("spawn")
    out: Any = ctx.Queue()
    start_at = time.time() + 1.5  # spawned interpreters need a moment to import
    share, extra = divmod(mails, procs)
    workers = []
    offset = first
    for p in range(procs):
        count = share + (1 if p < extra else 0)
        per = sessions // procs + (1 if p < sessions % procs else 0)
        workers.append(ctx.Process(target=_client_process,
                                   args=(port, per, offset, count, start_at, out)))
        offset += count
    for w in workers:
        w.start()
    results = [out.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    return {"start": start_at, "end": max(r[1] for r in results),
            "refused": sum(r[0] for r in results), "client_cpu_s": sum(r[2] for r in results)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omnigate-bench-smtp-") as tmp:
        work = Path(tmp)
        procs = Processes(work)
        http_port, smtp_port, smsc_port, control = (free_port() for _ in range(4))
        config = work / "omnigate.toml"
        write_config(config, http_port=http_port, smtp_port=smtp_port, smsc_port=smsc_port)
        try:
            procs.sim(smsc_port, control, dlr=False)
            daemon = procs.daemon(config)
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, f"http://127.0.0.1:{http_port}", link_up=True)
                # Warm-up (imports, caches, connections) is not measured.
                await asyncio.to_thread(load, smtp_port, 500, args.sessions, args.procs, 0)
                await wait_sim(session, control, 500, 60)
                before = await sim_count(session, control)
                cpu_before = cpu_seconds(daemon.pid)
                run = await asyncio.to_thread(load, smtp_port, args.mails, args.sessions,
                                              args.procs, 500)
                accepted = args.mails - run["refused"]
                smsc_end = await wait_sim(session, control, before + accepted, 300)
                # wait_sim answers in time.monotonic(); the clients report epoch seconds
                smsc_end_epoch = time.time() - (time.monotonic() - smsc_end)
                cpu = cpu_seconds(daemon.pid) - cpu_before
            result = {
                "mails": args.mails, "sessions": args.sessions, "client_processes": args.procs,
                "refused": run["refused"],
                "mails_accepted_per_s": round(accepted / (run["end"] - run["start"])),
                "sms_end_to_end_per_s": round(accepted / (smsc_end_epoch - run["start"])),
                "daemon_cpu_us_per_mail": round(cpu / accepted * 1e6, 1),
                "client_cpu_us_per_mail": round(run["client_cpu_s"] / args.mails * 1e6, 1),
                "daemon_peak_rss_mb": round(rss_kb(daemon.pid, "VmHWM") / 1024, 1),
            }
        except Exception:
            print(f"--- daemon.log\n{procs.tail('daemon.log')}\n--- sim.log\n{procs.tail('sim.log')}",
                  file=sys.stderr)
            raise
        finally:
            procs.stop_all()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mails", type=int, default=6000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    doc = {"date": date.today().isoformat(),
           "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
           "args": vars(args), "sqlite": result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{date.today().isoformat()}-smtp.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
