"""SMTP ingress benchmark: mails/s accepted and SMS/s end to end at the simulator.

The daemon (`omnigate run`) and the SMPP simulator run as separate processes on
loopback, as in bench/throughput.py (with bench/common.py's process helpers). The
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
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # a sibling module, not a package
    bench_dir,
    cpu_seconds,
    free_port,
    peak_rss_mb,
    sim_count,
    spawn_clients,
    sqlite_gateway_toml,
    wait_ready,
    wait_sim,
    write_sqlite_report,
)

DOMAIN = "sms.example.com"


def write_config(path: Path, *, http_port: int, smtp_port: int, smsc_port: int) -> None:
    path.write_text(sqlite_gateway_toml(
        http_port, smsc_port, f'[smtp]\nlisten = "127.0.0.1:{smtp_port}"\ndomains = ["{DOMAIN}"]\n'))


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


def load(port: int, mails: int, sessions: int, procs: int, first: int) -> dict[str, Any]:
    """Run the clients; wall-clock start and end as epoch seconds."""
    share, extra = divmod(mails, procs)
    arglists = []
    offset = first
    for p in range(procs):
        count = share + (1 if p < extra else 0)
        per = sessions // procs + (1 if p < sessions % procs else 0)
        arglists.append((port, per, offset, count))
        offset += count
    start_at, results = spawn_clients(_sessions, arglists, delay=1.5)
    return {"start": start_at, "end": max(r[0][1] for r in results),
            "refused": sum(r[0][0] for r in results), "client_cpu_s": sum(r[1] for r in results)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with bench_dir("omnigate-bench-smtp-") as (work, procs):
        http_port, smtp_port, smsc_port, control = (free_port() for _ in range(4))
        config = work / "omnigate.toml"
        write_config(config, http_port=http_port, smtp_port=smtp_port, smsc_port=smsc_port)
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
            "daemon_peak_rss_mb": peak_rss_mb(daemon.pid),
        }
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mails", type=int, default=6000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    args = parser.parse_args()
    write_sqlite_report(f"{date.today().isoformat()}-smtp.json", args, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
