"""`omnigate account ...` and `omnigate report ...`: the admin API from a terminal.

They talk to the running daemon (its memory holds the balances and usage the
store is written from), with an admin API key from --key or OMNIGATE_API_KEY.
Settings are `name=value`; a value that reads as JSON is taken as JSON
(`daily_quota=500`, `senders=["ACME","HELP"]`), anything else as text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

_COMMON = argparse.ArgumentParser(add_help=False)
_COMMON.add_argument("--url", default="http://127.0.0.1:8080", help="the daemon's HTTP API")
_COMMON.add_argument("--key", default=os.environ.get("OMNIGATE_API_KEY"),
                     help="an admin API key (default: $OMNIGATE_API_KEY)")


class ApiError(Exception):
    pass


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    headers = {"Accept": "application/json"}
    if args.key:
        headers["X-API-Key"] = args.key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"{args.url.rstrip('/')}{path}", data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            if resp.headers.get_content_type() == "application/json":
                return json.loads(raw)
            return raw.decode()
    except urllib.error.HTTPError as exc:
        raise ApiError(f"refused ({exc.code}): {exc.read().decode(errors='replace').strip()}") \
            from None
    except urllib.error.URLError as exc:
        raise ApiError(f"cannot reach omnigate at {args.url}: {exc.reason}") from None


def _settings(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ApiError(f"{pair!r}: expected name=value")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(nothing)"
    columns = list(rows[0])
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def cmd_account(args: argparse.Namespace) -> Any:
    base = "/api/v1/accounts"
    if args.action == "list":
        rows = _call(args, "GET", base)["accounts"]
        return _table([{"name": a["name"], "role": a["role"], "billing": a["billing"],
                        "balance": a["balance"], "today": a["usage"]["day_parts"],
                        "month": a["usage"]["month_parts"], "company": a["company"]}
                       for a in rows])
    name = urllib.parse.quote(args.name, safe="")
    if args.action == "add":
        return _call(args, "POST", base, {"name": args.name, **_settings(args.settings)})
    if args.action == "set":
        return _call(args, "PATCH", f"{base}/{name}", _settings(args.settings))
    if args.action == "topup":
        return _call(args, "POST", f"{base}/{name}/balance",
                     {"set" if args.set else "topup": args.amount, "note": args.note})
    if args.revoke:
        _call(args, "DELETE", f"{base}/{name}/keys/{urllib.parse.quote(args.revoke, safe='')}")
        return f"key {args.revoke} of {args.name} revoked"
    key = _call(args, "POST", f"{base}/{name}/keys", {"label": args.label})
    return f"{key['key']}\n(shown this once: keep it now; its id is {key['id']})"


def cmd_report(args: argparse.Namespace) -> Any:
    query = {k: v for k, v in (("from", args.since), ("to", args.until), ("group", args.group),
                               ("period", args.period), ("account", args.account)) if v}
    if args.csv:
        query["format"] = "csv"
    path = f"/api/v1/reports/{args.kind}?{urllib.parse.urlencode(query)}"
    answer = _call(args, "GET", path)
    return answer if args.csv else _table(answer["rows"])


def _run(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            out = func(args)
        except ApiError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(out if isinstance(out, str) else json.dumps(out, indent=2))
        return 0
    return run


def add_commands(sub: Any) -> None:
    account = sub.add_parser("account", help="accounts of a running daemon (admin API)")
    actions = account.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[_COMMON], help="accounts with usage and balance")
    for action, title in (("add", "create an account"), ("set", "change settings")):
        p = actions.add_parser(action, parents=[_COMMON], help=title)
        p.add_argument("name")
        p.add_argument("settings", nargs="*", help="name=value, e.g. billing=prepaid "
                                                   "daily_quota=500 password=...")
    top = actions.add_parser("topup", parents=[_COMMON], help="add to a prepaid balance")
    top.add_argument("name")
    top.add_argument("amount", type=float)
    top.add_argument("--set", action="store_true", help="make the balance this amount")
    top.add_argument("--note")
    key = actions.add_parser("key", parents=[_COMMON], help="make an API key (or --revoke ID)")
    key.add_argument("name")
    key.add_argument("--label")
    key.add_argument("--revoke", metavar="ID")
    account.set_defaults(func=_run(cmd_account))

    report = sub.add_parser("report", parents=[_COMMON], help="traffic and billing reports")
    report.add_argument("kind", choices=["traffic", "billing", "movements", "balances"])
    report.add_argument("--from", dest="since", help="first day, YYYY-MM-DD (default: "
                                                     "this month's first)")
    report.add_argument("--to", dest="until", help="last day, YYYY-MM-DD (default: today)")
    report.add_argument("--group", help="comma-separated: account, company, department, "
                                        "cost_centre, project (traffic also origin, link, status)")
    report.add_argument("--period", choices=["day", "week", "month"])
    report.add_argument("--account")
    report.add_argument("--csv", action="store_true", help="CSV for an invoicing import")
    report.set_defaults(func=_run(cmd_report))
