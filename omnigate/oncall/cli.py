"""`omnigate oncall show NAME [--at ISO]`: who is on call, read from the config file.

Schedules are config, so the answer needs no running daemon; it is the same
resolver `Gateway.submit` and `GET /api/v1/schedules/{name}/now` use.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from omnigate.config import ConfigError, load
from omnigate.oncall.schedule import Schedule


def add_commands(sub: Any) -> None:
    oncall = sub.add_parser("oncall", help="on-call schedules")
    oncall_sub = oncall.add_subparsers(dest="oncall_command", required=True)
    show = oncall_sub.add_parser("show", help="who is on call for a schedule, and why")
    show.add_argument("name")
    show.add_argument("--at", help="ISO 8601 time; without an offset it is the schedule's "
                                   "local time (default: now)")
    show.add_argument("-c", "--config", default="etc/omnigate.toml")
    show.add_argument("--json", action="store_true", help="answer as JSON")
    show.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"{args.config}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    found = [s for s in config.schedules if s.name == args.name.lower()]
    if not found:
        names = ", ".join(s.name for s in config.schedules) or "none configured"
        print(f"no schedule named {args.name!r} ({names})", file=sys.stderr)
        return 2
    schedule = Schedule(found[0])
    try:
        at = schedule.local_time(args.at) if args.at else time.time()
    except ValueError:
        print(f"--at: expected ISO 8601 such as 2026-12-24T22:00, got {args.at!r}", file=sys.stderr)
        return 2
    oncall = schedule.who(at)
    if args.json:
        print(json.dumps({"schedule": schedule.name, "at": oncall.at.isoformat(),
                          "timezone": schedule.config.timezone, "numbers": list(oncall.numbers),
                          "why": oncall.why}))
    else:
        print(f"{schedule.name} at {oncall.at.isoformat(timespec='minutes')} "
              f"({schedule.config.timezone}): {', '.join(oncall.numbers) or 'nobody'}")
        print(f"  why: {oncall.why}")
    return 0 if oncall.numbers else 1
