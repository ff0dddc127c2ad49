"""The `omnigate` command: run, check-config, send, sim, hash-password."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import json
import logging
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

from omnigate import __version__
from omnigate.config import Config, ConfigError, load

DEFAULT_CONFIG = "etc/omnigate.toml"


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional speed-up
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _load_checked(path: str) -> Config:
    """Config file plus each link's own model, every problem reported at once."""
    from omnigate import carriers
    from omnigate.api import smpp, spool
    from omnigate.api.smtp import config_problems

    config = load(path)
    _, problems = carriers.resolve(config.links)
    problems += config_problems(config)
    problems += spool.config_problems(config)
    problems += smpp.config_problems(config)
    from omnigate.oncall.service import config_problems as oncall_problems

    problems += oncall_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def _print_problems(headline: str, exc: ConfigError) -> None:
    print(headline, file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = _load_checked(args.config)
    except ConfigError as exc:
        _print_problems(f"{args.config}: {len(exc.problems)} problem(s)", exc)
        return 1
    print(f"{args.config}: ok ({len(config.links)} links, {len(config.routes)} routes, "
          f"store {config.store.url.split('://')[0]})")
    return 0


async def _run(config: Config, stop_signal: Callable[[asyncio.Event], None]) -> None:
    from omnigate.gateway import Gateway

    gateway = Gateway(config)
    stop = asyncio.Event()
    stop_signal(stop)
    await gateway.start()
    _tune_gc()
    await stop.wait()
    logging.getLogger("omnigate").info("stopping: finishing windows, flushing the store")
    await gateway.stop()
    logging.getLogger("omnigate").info("stopped")


def _tune_gc() -> None:
    """Fewer, cheaper collections: the hot path allocates many short-lived objects
    and the caches hold many long-lived ones that a full collection would rescan
    (measured with py-spy under bench/throughput.py load)."""
    gc.collect()
    gc.freeze()  # everything alive after start-up is never collected: skip scanning it
    gc.set_threshold(20_000, 50, 100)


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = _load_checked(args.config)
    except ConfigError as exc:
        _print_problems(f"{args.config}: cannot start:", exc)
        return 1
    _setup_logging(config.log_level)
    _install_uvloop()
    try:
        asyncio.run(_run(config, _on_signals))
    except OSError as exc:
        logging.getLogger("omnigate").error("cannot start: %s", exc)
        return 1
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    body: dict[str, object] = {"to": args.to, "text": args.text}
    if args.sender:
        body["from"] = args.sender
    if args.flash:
        body["flash"] = True
    req = urllib.request.Request(f"{args.url.rstrip('/')}/api/v1/messages",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as exc:
        print(f"refused ({exc.code}): {exc.read().decode(errors='replace').strip()}",
              file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"cannot reach omnigate at {args.url}: {exc.reason}", file=sys.stderr)
        return 1
    for m in answer["messages"]:
        print(f"{m['id']} {m['to']} {m['status']} parts={m['parts']}")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    _setup_logging("info")
    _install_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(args.simulator(args))
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from omnigate.api.auth import hash_secret

    secret = args.secret if args.secret is not None else getpass.getpass("secret: ")
    if not secret:
        print("an empty secret cannot be hashed", file=sys.stderr)
        return 1
    print(hash_secret(secret))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omnigate", description="omnigate SMS central")
    p.add_argument("--version", action="version", version=f"omnigate {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and explain mistakes")
    check.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    check.set_defaults(func=cmd_check_config)

    send = sub.add_parser("send", help="send an SMS through a running daemon's HTTP API")
    send.add_argument("--url", default="http://127.0.0.1:8080")
    send.add_argument("--to", action="append", required=True, help="recipient (repeatable)")
    send.add_argument("--from", dest="sender")
    send.add_argument("--flash", action="store_true")
    send.add_argument("text")
    send.set_defaults(func=cmd_send)

    sim = sub.add_parser("sim", help="run a protocol simulator")
    sim_sub = sim.add_subparsers(dest="protocol", required=True)
    from omnigate.sim import cimd2, httpprovider, modem, smpp, ucp

    for name, module, title in (("smpp", smpp, "SMPP 3.4 SMSC simulator"),
                                ("cimd2", cimd2, "Nokia CIMD 2.0 SMS Center simulator"),
                                ("ucp", ucp, "UCP/EMI 4.x SMSC simulator"),
                                ("http", httpprovider, "HTTP SMS provider simulator "
                                                       "(generic JSON, websms, Kannel)"),
                                ("modem", modem, "GSM modem simulator (AT commands, PDU "
                                                 "mode) on TCP, like a serial device server")):
        sim_parser = sim_sub.add_parser(name, help=title)
        module.add_arguments(sim_parser)
        sim_parser.set_defaults(func=cmd_sim, simulator=module.run)

    hp = sub.add_parser("hash-password", help="hash a password or API key for the config")
    hp.add_argument("secret", nargs="?", help="read from the terminal when left out")
    hp.set_defaults(func=cmd_hash_password)

    from omnigate.accounts.cli import add_commands

    add_commands(sub)  # account, report
    from omnigate.oncall.cli import add_commands as add_oncall

    add_oncall(sub)  # oncall show
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))
