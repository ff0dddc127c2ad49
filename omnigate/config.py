"""The whole TOML configuration as pydantic models: defaults live here and nowhere else.

Secrets stay out of the file when wanted: any string value may be written as
``"${NAME}"`` and is replaced by the environment variable NAME at load time
(an unset variable is a config error naming the field).

Link sections are checked twice: here for the fields every link has, and by
the carrier registry for the fields of its type (see `carriers.resolve`), so
`omnigate check-config` reports both with their paths.
"""

from __future__ import annotations

import codecs
import datetime as dt
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from omnigate.oncall.config import ScheduleConfig, check_schedules

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class ConfigError(Exception):
    """Every mistake in a config file, each as 'path: reason'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def split_hostport(value: str) -> tuple[str, int]:
    """'127.0.0.1:8080' or '[::1]:8080' -> (host, port); port 0 = any free port."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def _hostport(value: str) -> str:
    split_hostport(value)
    return value


def _regexes(values: list[str]) -> list[str]:
    for v in values:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"{v!r} is not a regular expression: {exc}") from None
    return values


def _networks(values: list[str]) -> list[str]:
    for v in values:
        ipaddress.ip_network(v, strict=False)
    return values


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeConfig(Section):
    name: str = Field("node1", description="names this node in events and logs")
    id: int = Field(0, ge=0, le=7, description="unique per node sharing a store; part of message ids")


class QueueConfig(Section):
    memory_limit: int = Field(
        50_000, ge=100, description="queued messages held in memory; the rest wait in the store")


class StoreConfig(Section):
    url: str = "sqlite+aiosqlite:///var/omnigate.db"

    @field_validator("url")
    @classmethod
    def _supported(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return v
    commit_interval: float = Field(
        0.002, ge=0, le=1, description="seconds a group commit waits to gather more writes")
    max_batch: int = Field(2000, ge=1, description="most writes in one group commit")


class HttpConfig(Section):
    listen: str = "127.0.0.1:8080"
    allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"],
                             description="client networks allowed to use the API")
    max_body: int = Field(1 << 20, ge=1024, description="bytes; larger requests get 413")
    max_recipients: int = Field(1000, ge=1)

    _listen = field_validator("listen")(_hostport)
    _allow = field_validator("allow")(_networks)


class NumbersConfig(Section):
    default_region: str = Field("SE", min_length=2, max_length=2)
    mobile_only: bool = Field(True, description="refuse numbers that are not mobile")

    @field_validator("default_region")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()


class MessagesConfig(Section):
    max_parts: int = Field(10, ge=1, le=255, description="longer texts are rejected")
    transliterate: bool = Field(
        False, description="turn characters GSM lacks into plain letters instead of UCS-2")
    validity: float = Field(7 * 86400, gt=0, description="seconds before an unsent message expires")
    report: bool = Field(True, description="ask carriers for delivery reports")


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (e.g. 'Europe/Stockholm')") from None
    return name


class RoutingConfig(Section):
    timezone: str = Field("UTC", description="zone of route time windows without their own")
    circuit_failures: int = Field(5, ge=1, description="consecutive temporary failures of a link "
                                                       "that open its circuit")
    circuit_cooldown: float = Field(30.0, gt=0, description="seconds a link's open circuit "
                                                            "skips it before one probe")

    _timezone = field_validator("timezone")(_zone)


class ClusterConfig(Section):
    """Several nodes sharing one PostgreSQL store (see README "Redundant nodes")."""

    heartbeat: float = Field(1.0, gt=0, description="seconds between a node's heartbeats")
    lease: float = Field(10.0, gt=0, description="seconds without a heartbeat before a node "
                                                 "counts as dead and its queue is taken over")

    @model_validator(mode="after")
    def _lease_covers_beats(self) -> ClusterConfig:
        if self.lease < 3 * self.heartbeat:
            raise ValueError("lease must be at least 3 heartbeats")
        return self


class InboundConfig(Section):
    """Where MO messages go (see README "Inbound SMS"); targets are URIs."""

    order: list[Literal["dialog", "number", "alias", "last_sender", "sender", "default"]] = Field(
        default_factory=lambda: ["dialog", "number", "alias", "last_sender", "sender", "default"],
        description="rules tried in this order; the first that finds targets wins")
    numbers: dict[str, list[str]] = Field(
        default_factory=dict, description="receiving number (or prefix ending in *) -> targets")
    aliases: dict[str, list[str]] = Field(
        default_factory=dict, description="first word of the text (any case) -> targets")
    senders: dict[str, list[str]] = Field(default_factory=dict,
                                          description="sender number -> targets")
    accounts: dict[str, list[str]] = Field(
        default_factory=dict, description="account -> targets, for replies to what it sent")
    default: list[str] = Field(default_factory=list, description="targets when no rule matched, "
                                                                 "and when a target keeps failing")
    dialog_numbers: list[str] = Field(
        default_factory=list, description="long numbers sending messages that name no sender, "
                                          "one per conversation, so replies find their message")
    dialog_origins: list[Literal["http", "smtp", "spool", "sql", "tcp", "web", "smpp", "cli",
                                 "auto"]] = Field(default_factory=lambda: ["smtp"],
                                                  description="whose messages get dialog numbers")
    last_sender_age: float = Field(7 * 86400, gt=0, description="seconds a phone's reply still "
                                                                "goes to whoever wrote to it")
    wait: float = Field(60.0, gt=0, description="seconds to wait for the missing parts of a long "
                                                "MO before delivering it incomplete")
    http_attempts: int = Field(5, ge=1, description="tries of an http target before falling back")
    http_retry: float = Field(2.0, gt=0, description="first delay between tries, doubling")
    http_timeout: float = Field(10.0, gt=0, description="seconds per request")
    workers: int = Field(4, ge=1, le=64, description="MO messages delivered at once")

    @field_validator("dialog_numbers")
    @classmethod
    def _dialog_digits(cls, values: list[str]) -> list[str]:
        for v in values:
            if not v.lstrip("+").isdigit():
                raise ValueError(f"dialog number {v!r} is not a phone number (digits)")
        return values

    @model_validator(mode="after")
    def _targets(self) -> InboundConfig:
        from omnigate.routing.inbound import target_problem

        groups = [self.default, *self.numbers.values(), *self.aliases.values(),
                  *self.senders.values(), *self.accounts.values()]
        problems = [p for group in groups for t in group if (p := target_problem(t))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class RetryConfig(Section):
    initial: float = Field(5.0, gt=0, description="first retry delay, seconds")
    maximum: float = Field(600.0, gt=0, description="retry delay cap, seconds")
    factor: float = Field(2.0, ge=1)
    jitter: float = Field(0.2, ge=0, le=1, description="+- this fraction of the delay")
    max_attempts: int = Field(10, ge=1, description="temporary failures before 'failed'")


class LinkEntry(BaseModel):
    """A [[links]] entry as far as config.py knows it; its type checks the rest."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str


class RouteMatch(Section):
    """Conditions of a route; every one given must hold. No match at all = the default route."""

    prefix: list[str] = Field(default_factory=list,
                              description="E.164 destination prefixes, with or without '+'")
    regex: list[str] = Field(default_factory=list,
                             description="patterns searched in the E.164 number ('+46...')")
    origin: list[Literal["http", "smtp", "spool", "sql", "tcp", "web", "smpp", "cli", "auto"]] = Field(
        default_factory=list, description="ingresses the message came through")
    account: list[str] = Field(default_factory=list, description="sending accounts")
    sender: list[str] = Field(default_factory=list, description="originators, as submitted")
    flash: bool | None = Field(None, description="only flash (true) or only normal (false) SMS")
    min_priority: int | None = Field(None, description="priority at least this")
    days: list[str] = Field(default_factory=list,
                            description="weekdays: 'mon'..'sun' or ranges like 'mon-fri'")
    hours: str | None = Field(None, description="'08:00-17:00'; past midnight allowed ('22:00-06:00')")
    timezone: str | None = Field(None, description="zone of days/hours; default [routing].timezone")

    @field_validator("prefix")
    @classmethod
    def _digits(cls, values: list[str]) -> list[str]:
        out = []
        for v in values:
            d = v.lstrip("+")
            if not d.isdigit():
                raise ValueError(f"prefix {v!r} is not digits")
            out.append(d)
        return out

    _patterns = field_validator("regex")(_regexes)

    @field_validator("days")
    @classmethod
    def _days(cls, values: list[str]) -> list[str]:
        words = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        for v in values:
            if any(d not in words for d in v.lower().split("-", 1)):
                raise ValueError(f"day {v!r}: use mon..sun or a range like mon-fri")
        return values

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            left, sep, right = value.partition("-")
            try:
                if not sep:
                    raise ValueError
                dt.time.fromisoformat(left)
                dt.time.fromisoformat(right)
            except ValueError:
                raise ValueError(f"hours {value!r}: expected HH:MM-HH:MM") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return value if value is None else _zone(value)


class RouteConfig(Section):
    name: str | None = None
    match: RouteMatch | None = None
    tiers: list[list[str]] = Field(min_length=1)
    fallback_after: int = Field(3, ge=1, description="failed attempts on a tier before the next")
    weights: dict[str, int] = Field(default_factory=dict,
                                    description="share within a tier by link name; default 1")

    @field_validator("weights")
    @classmethod
    def _positive(cls, weights: dict[str, int]) -> dict[str, int]:
        for name, w in weights.items():
            if w < 1:
                raise ValueError(f"weight of {name!r} must be at least 1")
        return weights

    @field_validator("tiers")
    @classmethod
    def _nonempty(cls, tiers: list[list[str]]) -> list[list[str]]:
        if any(not t for t in tiers):
            raise ValueError("a tier needs at least one link")
        return tiers


class AccountConfig(Section):
    name: str = Field(min_length=1)
    role: Literal["user", "admin"] = "user"
    password_hash: str | None = Field(None, description="from `omnigate hash-password`")
    api_key_hash: list[str] = Field(default_factory=list, description="from `omnigate hash-password`")
    allow: list[str] = Field(default_factory=list, description="client networks; empty = [http].allow")
    rate: float = Field(0, ge=0, description="messages per second sent for this account; "
                                             "0 = unlimited (over it, messages wait)")
    # -- sender control, quotas and billing (omnigate/accounts/, README "Accounts and billing")
    enabled: bool = Field(True, description="false refuses every message of the account")
    mail_senders: list[str] = Field(default_factory=list, description="e-mail senders (shell "
                                    "patterns, '*@example.com') that send as this account")
    senders: list[str] = Field(default_factory=list, description="sender IDs allowed "
                               "(alphanumeric up to 11 characters, or numbers); empty = any")
    default_sender: str | None = Field(None, description="sender ID when a message names none")
    dlr_url: str | None = Field(None, pattern=r"^https?://",
                                description="status callback (Kannel %-escapes) for messages "
                                            "that name none")
    dlr_mask: int = Field(3, ge=1, le=31, description="Kannel dlr-mask of dlr_url: 1 delivered, "
                                                      "2 undelivered, 8 sent, 16 refused")
    notice_email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$",
                                     description="gets a mail when an SMS of this account ends "
                                                 "failed, undelivered or expired ([mail] needed)")
    footer: str | None = Field(None, description="appended to every text (counted in the parts)")
    company: str | None = Field(None, description="cost dimension, recorded per message")
    department: str | None = Field(None, description="cost dimension, recorded per message")
    cost_centre: str | None = Field(None, description="cost dimension, recorded per message")
    project: str | None = Field(None, description="cost dimension, recorded per message")
    daily_quota: int | None = Field(None, ge=0, description="parts per day; None = unlimited")
    monthly_quota: int | None = Field(None, ge=0, description="parts per month; None = unlimited")
    submit_rate: float = Field(0, ge=0, description="messages per second taken at the door; "
                                                    "0 = unlimited (over it: refused, 429)")
    destinations: list[str] = Field(default_factory=list, description="E.164 prefixes the "
                                    "account may send to ('+46', '+467'); empty = any")
    billing: Literal["postpaid", "prepaid"] = "postpaid"
    credit_limit: float = Field(0, ge=0, description="prepaid: how far the balance may go "
                                                     "below zero")

    _allow = field_validator("allow")(_networks)

    @field_validator("senders")
    @classmethod
    def _sender_ids(cls, values: list[str]) -> list[str]:
        for v in values:
            if not _SENDER_ID.match(v):
                raise ValueError(f"sender {v!r}: alphanumeric up to 11 characters, or a number")
        return values

    @field_validator("destinations")
    @classmethod
    def _prefixes(cls, values: list[str]) -> list[str]:
        for v in values:
            if not v.lstrip("+").isdigit():
                raise ValueError(f"destination {v!r} is not an E.164 prefix")
        return ["+" + v.lstrip("+") for v in values]

    @model_validator(mode="after")
    def _default_allowed(self) -> AccountConfig:
        if self.default_sender and self.senders and self.default_sender not in self.senders:
            raise ValueError(f"default_sender {self.default_sender!r} is not in senders")
        return self


# 3GPP TS 23.040 §9.1.2.5: an alphanumeric originator is at most 11 GSM characters;
# a numeric one is an address of up to 15 digits (E.164), '+' allowed.
_SENDER_ID = re.compile(r"^(?:[A-Za-z0-9 ._&'-]{1,11}|\+?[0-9]{1,15})$")


class BillingConfig(Section):
    """Prices and prepaid settlement (`omnigate/accounts/`); absent = every part costs 0."""

    currency: str = Field("EUR", min_length=1, max_length=8)
    prices: dict[str, float] = Field(default_factory=dict, description="price per part by "
                                     "E.164 destination prefix ('+46' = 0.05); longest wins")
    default_price: float = Field(0.0, ge=0, description="per part where no prefix matches")
    refund: list[Literal["rejected", "expired", "failed", "undelivered"]] = Field(
        default_factory=lambda: ["rejected", "expired"],
        description="final statuses whose prepaid amount is given back")
    timezone: str = Field("UTC", description="where days and months of quotas begin")

    _timezone = field_validator("timezone")(_zone)

    @field_validator("prices")
    @classmethod
    def _price_prefixes(cls, prices: dict[str, float]) -> dict[str, float]:
        out = {}
        for prefix, price in prices.items():
            if not prefix.lstrip("+").isdigit():
                raise ValueError(f"price prefix {prefix!r} is not an E.164 prefix")
            if price < 0:
                raise ValueError(f"price of {prefix!r} is negative")
            out["+" + prefix.lstrip("+")] = price
        return out


class SimulatorConfig(Section):
    """An SMSC simulator started inside the daemon: for trying omnigate, not for traffic."""

    type: Literal["smpp", "cimd2", "ucp", "http", "modem"] = "smpp"
    listen: str = "127.0.0.1:2775"
    system_id: str | None = Field(None, description="the login it accepts "
                                                    "(CIMD2/UCP: user; http: Basic user)")
    password: str | None = None
    dlr: bool = True
    dlr_delay: float = Field(0.0, ge=0)

    _listen = field_validator("listen")(_hostport)


class TrafficLogConfig(Section):
    path: str | None = Field("var/traffic.log", description="None switches the traffic log off")
    rotate: Literal["daily", "never"] = Field(
        "daily", description="daily: the log of each day goes to PATH.YYYY-MM-DD")
    max_bytes: int = Field(0, ge=0, description="also rotate when the log grows past this; 0 = no "
                                                "size limit")
    keep: int = Field(90, ge=1, description="rotated files kept; older ones are deleted")


class SmtpGroup(Section):
    """An alias address in the SMS domains: ``it-ops@sms.example.com`` -> its numbers."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$",
                      description="the local part (RFC 5321 §4.5.3.1.1: at most 64 octets)")
    numbers: list[str] = Field(min_length=1, description="written any usual way; checked at start")

    @field_validator("name")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


class SmtpConfig(Section):
    """The e-mail ingress (`api/smtp.py`); an absent [smtp] section means no SMTP listener."""

    listen: str = "127.0.0.1:2525"
    hostname: str | None = Field(None, description="name in the greeting; None = this host's name")
    domains: list[str] = Field(min_length=1, description="mail to NUMBER@DOMAIN becomes an SMS")
    allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"],
                             description="client networks; others get 554 at connect")
    max_size: int = Field(10 << 20, ge=1024, description="bytes of one mail (RFC 1870 SIZE); 552 beyond")
    # RFC 5321 §4.5.3.1.8: a server MUST accept at least 100 recipients per mail.
    max_recipients: int = Field(100, ge=1, description="numbers per mail, groups expanded; 452 beyond")
    senders: list[str] = Field(default_factory=list,
                               description="envelope senders allowed (shell patterns such as "
                                           "'*@example.com'); empty = any")
    auth_required: bool = Field(False, description="530 until AUTH PLAIN/LOGIN against [[accounts]]")
    auth_require_tls: bool = Field(True, description="offer AUTH only after STARTTLS")
    tls_cert: str | None = Field(None, description="PEM certificate chain for STARTTLS")
    tls_key: str | None = Field(None, description="PEM private key for STARTTLS")
    require_starttls: bool = Field(False, description="530 for everything before STARTTLS")
    text: Literal["subject", "body", "both"] = "both"
    separator: str = Field(" - ", description="between subject and body when text = 'both'")
    too_long: Literal["truncate", "reject"] = Field(
        "truncate", description="a text beyond [messages].max_parts is cut (with '...') or refused")
    disclaimers: list[str] = Field(default_factory=list,
                                   description="regular expressions removed from the body "
                                               "(case-insensitive, '.' matches newlines)")
    sender: str | None = Field(None, description="SMS originator of mailed messages; None = link default")
    # RFC 5321 §4.5.3.2.7: the server timeout SHOULD be at least 5 minutes.
    timeout: float = Field(300.0, gt=0, description="seconds of client silence before closing")
    groups: list[SmtpGroup] = Field(default_factory=list)

    _listen = field_validator("listen")(_hostport)
    _allow = field_validator("allow")(_networks)

    @field_validator("domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        return [v.strip().lower().rstrip(".") for v in values]

    _patterns = field_validator("disclaimers")(_regexes)

    @field_validator("groups")
    @classmethod
    def _unique_groups(cls, groups: list[SmtpGroup]) -> list[SmtpGroup]:
        seen: set[str] = set()
        for g in groups:
            if g.name in seen:
                raise ValueError(f"group name {g.name!r} is used twice")
            seen.add(g.name)
        return groups

    @model_validator(mode="after")
    def _tls(self) -> SmtpConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_cert is None and self.require_starttls:
            raise ValueError("require_starttls needs tls_cert and tls_key")
        if self.auth_required and self.auth_require_tls and self.tls_cert is None:
            raise ValueError("auth_required with auth_require_tls needs tls_cert and tls_key "
                             "(or set auth_require_tls = false on a trusted network)")
        return self


class MailConfig(Section):
    """Mail out (`delivery/email.py`): failure notices, inbound SMS, alarms, via a relay."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    relay: str = Field(description="host:port of the SMTP relay (smarthost)")
    from_: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$",
                       description="sender of notices and alarms")
    domain: str | None = Field(None, description="SMS domain of inbound mail's From; "
                                                 "None = first [smtp].domains entry")
    tls: bool = Field(False, description="implicit TLS (port 465, RFC 8314)")
    starttls: bool | None = Field(None, description="None = when offered, true = required, false = never")
    username: str | None = None
    password: str | None = None
    timeout: float = Field(30.0, gt=0, description="seconds per SMTP command")
    notices: bool = Field(True, description="mail senders of mailed SMS that end failed, "
                                            "undelivered or expired")
    error_address: str | None = Field(None, description="gets link down/up alarms")
    queue_size: int = Field(10_000, ge=1, description="mails waiting; beyond that new ones are dropped "
                                                      "with a log line")
    retry_initial: float = Field(30.0, gt=0, description="seconds before the first retry")
    retry_maximum: float = Field(900.0, gt=0)
    max_attempts: int = Field(8, ge=1, description="tries of one mail on temporary failures")

    _relay = field_validator("relay")(_hostport)

    @model_validator(mode="after")
    def _exclusive(self) -> MailConfig:
        if self.tls and self.starttls:
            raise ValueError("tls (implicit) and starttls exclude each other")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class TcpConfig(Section):
    """The telnet-style line protocol (`api/tcp.py`); an absent [tcp] section means no listener."""

    listen: str = "127.0.0.1:2323"
    allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"],
                             description="client networks; others get -ERR forbidden at connect")
    idle_timeout: float = Field(300.0, gt=0, description="seconds without a command before closing")
    # A SEND line holds up to max_recipients numbers and a text of up to
    # [messages].max_parts x 160 characters of up to 4 UTF-8 bytes each.
    max_line: int = Field(8192, ge=256, le=1 << 20,
                          description="bytes of one line, and of one DATA text; longer is refused")
    max_sessions: int = Field(100, ge=1, description="sessions at once; more get -ERR busy")
    max_recipients: int = Field(100, ge=1, description="numbers in one SEND")
    charset: str = Field("utf-8", description="of the lines, e.g. 'iso-8859-1' for old boxes")
    auth_delay: float = Field(1.0, ge=0, le=60, description="seconds before answering a wrong "
                              "AUTH; doubles with each further one from the same address")

    _listen = field_validator("listen")(_hostport)
    _allow = field_validator("allow")(_networks)

    @field_validator("charset")
    @classmethod
    def _charset(cls, v: str) -> str:
        try:
            return codecs.lookup(v).name
        except LookupError:
            raise ValueError(f"unknown charset {v!r}") from None


def _known_charset(v: str | None) -> str | None:
    """A charset label -> Python's codec name; an unknown one is a config error."""
    if v is None:
        return None
    try:
        return codecs.lookup(v).name
    except LookupError:
        raise ValueError(f"unknown charset {v!r}") from None


class SpoolConfig(Section):
    """The file spool (`api/spool.py`); an absent [spool] section means no spool."""

    dir: str = Field("spool", description="holds outgoing/ processed/ failed/ incoming/, "
                                          "created on start")
    charset: str = Field("utf-8", description="of files without a Charset header")
    fallback_charset: str | None = Field(
        "iso-8859-1", description="read a file whose bytes are not valid in `charset` with this; "
                                  "None = such a file fails")
    settle: float = Field(0.3, ge=0, le=60, description="seconds a file must stay unchanged "
                                                        "before it is read")
    rescan: float = Field(5.0, gt=0, description="seconds between full scans of outgoing/, "
                                                 "the safety net for missed file events")
    processed: Literal["move", "delete"] = Field(
        "move", description="what becomes of a sent file; NAME.ok is written either way")
    max_size: int = Field(64 << 10, ge=1024, description="bytes of one file; larger ones fail")
    max_recipients: int = Field(1000, ge=1, description="numbers in one file, groups expanded")
    sender: str | None = Field(None, description="SMS originator of files without a Sender header")
    groups: list[SmtpGroup] = Field(default_factory=list,
                                    description="names usable in To: (like [[smtp.groups]])")

    _charsets = field_validator("charset", "fallback_charset")(_known_charset)


class SqlColumns(Section):
    """Column names of an outbox table, for tables that exist already."""

    id: str = "id"
    recipient: str = "recipient"
    text: str = "text"
    sender: str | None = "sender"
    status: str = "status"
    message_id: str = "message_id"
    error: str = "error"
    created_at: str | None = Field("created_at", description="part of the row's client_ref, "
                                   "so a recreated table's ids are not taken for old rows")
    updated_at: str = Field("updated_at", description="set on every change; times claims")


class SqlSourceConfig(Section):
    """A [[sql]] block (`api/sqltable.py`): rows in `outbox` become SMS, MO lands in `inbox`."""

    name: str = Field("sql", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="names the source in logs; messages get account 'sql:NAME'")
    url: str | None = Field(None, description="SQLAlchemy async URL (sqlite+aiosqlite:///..., "
                                              "postgresql+asyncpg://...); None = the store's database")
    outbox: str = Field("sms_outbox", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    inbox: str | None = Field("sms_inbox", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
                              description="table for inbound SMS; None = none")
    columns: SqlColumns = Field(default_factory=SqlColumns)
    create: bool = Field(True, description="create the tables (and the NOTIFY trigger) if missing")
    poll_interval: float = Field(0.5, gt=0, le=3600, description="seconds between looks for new rows")
    batch: int = Field(500, ge=1, le=10_000, description="rows claimed per transaction")
    claim_timeout: float = Field(60.0, gt=0, description="seconds after which a row claimed by a "
                                                         "node that died is taken again")
    listen: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                               description="PostgreSQL: LISTEN on this channel for instant pickup")

    @field_validator("url")
    @classmethod
    def _async_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return v


class SmppAccountConfig(Section):
    """What one account may do over SMPP; accounts not listed get [smpp_server]'s defaults."""

    name: str = Field(min_length=1, max_length=15, description="an [[accounts]] name "
                      "(the bind's system_id: at most 15 characters, SMPP 3.4 §5.2.1)")
    binds: list[Literal["transmitter", "receiver", "transceiver"]] | None = Field(
        None, description="bind types allowed; None = [smpp_server].binds")
    max_binds: int | None = Field(None, ge=1, description="sessions at once; None = the default")
    rate: float | None = Field(None, ge=0, description="submit_sm per second, over it "
                               "ESME_RTHROTTLED; 0 = unlimited; None = the default")


class SmppServerConfig(Section):
    """The SMPP server for client systems (`api/smpp.py`); absent = no SMPP listener."""

    listen: str = Field("127.0.0.1:2777", description="not 2775, the simulator's default")
    allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"],
                             description="client networks; others are disconnected at once")
    tls_cert: str | None = Field(None, description="PEM certificate chain: SMPP over TLS")
    tls_key: str | None = Field(None, description="PEM private key for tls_cert")
    system_id: str = Field("omnigate", max_length=15, description="ours, in bind responses")
    binds: list[Literal["transmitter", "receiver", "transceiver"]] = Field(
        default_factory=lambda: ["transmitter", "receiver", "transceiver"],
        description="bind types every account may use unless [[smpp_server.accounts]] says")
    max_binds: int = Field(4, ge=1, description="sessions per account at once")
    rate: float = Field(0, ge=0, description="submit_sm per second per account; 0 = unlimited")
    window: int = Field(10, ge=1, le=1000, description="submit_sm awaiting their commit per "
                        "session (more: ESME_RMSGQFUL), and deliver_sm awaiting an answer")
    inactivity: float = Field(120.0, gt=0, description="seconds without a PDU from the client "
                              "before the session is closed")
    response_timeout: float = Field(10.0, gt=0, description="seconds for deliver_sm_resp; "
                                    "then the receipt or MO is sent again")
    retry_delay: float = Field(5.0, gt=0, description="seconds before a deliver_sm answered "
                               "with a temporary error is sent again")
    reassembly_timeout: float = Field(30.0, gt=0, description="seconds the parts of a long "
                                      "message wait for the rest; then they are refused")
    auth_delay: float = Field(1.0, ge=0, le=60, description="seconds before answering a wrong "
                              "bind; doubles with each further one from the same address")
    accounts: list[SmppAccountConfig] = Field(default_factory=list)

    _listen = field_validator("listen")(_hostport)
    _allow = field_validator("allow")(_networks)

    @model_validator(mode="after")
    def _tls_pair(self) -> SmppServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class WebConfig(Section):
    """The web pages under /ui/ (omnigate/web/): log in with an account's password."""

    session_ttl: float = Field(8 * 3600, gt=0, description="seconds a login lasts without use")
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (serve the "
                                "pages over HTTPS, e.g. behind a TLS proxy)")


class Config(Section):
    node: NodeConfig = Field(default_factory=NodeConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    numbers: NumbersConfig = Field(default_factory=NumbersConfig)
    messages: MessagesConfig = Field(default_factory=MessagesConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    inbound: InboundConfig = Field(default_factory=InboundConfig)
    cluster: ClusterConfig | None = Field(None, description="absent = a single node")
    links: list[LinkEntry] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    accounts: list[AccountConfig] = Field(default_factory=list)
    simulators: list[SimulatorConfig] = Field(default_factory=list)
    traffic_log: TrafficLogConfig = Field(default_factory=TrafficLogConfig)
    smtp: SmtpConfig | None = Field(None, description="absent = no SMTP ingress")
    tcp: TcpConfig | None = Field(None, description="absent = no TCP line protocol")
    mail: MailConfig | None = Field(None, description="absent = no mail out")
    spool: SpoolConfig | None = Field(None, description="absent = no file spool")
    sql: list[SqlSourceConfig] = Field(default_factory=list, description="SQL table sources")
    smpp_server: SmppServerConfig | None = Field(None, description="absent = no SMPP server")
    web: WebConfig | None = Field(None, description="absent = no web pages")
    billing: BillingConfig = Field(default_factory=BillingConfig)
    schedules: list[ScheduleConfig] = Field(default_factory=list, description="on-call "
                                            "schedules and alarm groups (omnigate/oncall/)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("links")
    @classmethod
    def _unique_links(cls, links: list[LinkEntry]) -> list[LinkEntry]:
        seen: set[str] = set()
        for link in links:
            if link.name in seen:
                raise ValueError(f"link name {link.name!r} is used twice")
            seen.add(link.name)
        return links

    _schedules = field_validator("schedules")(check_schedules)

    @field_validator("sql")
    @classmethod
    def _unique_sql(cls, sources: list[SqlSourceConfig]) -> list[SqlSourceConfig]:
        names = [s.name for s in sources]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"[[sql]] name {name!r} is used twice")
        return sources

    def route_problems(self) -> list[str]:
        """Cross-checks pydantic cannot see field by field: routes name real links."""
        names = {link.name for link in self.links}
        problems = []
        for i, route in enumerate(self.routes):
            for t, tier in enumerate(route.tiers):
                for name in tier:
                    if name not in names:
                        problems.append(f"routes[{i}].tiers[{t}]: no link named {name!r}")
            for name in route.weights:
                if not any(name in tier for tier in route.tiers):
                    problems.append(f"routes[{i}].weights: {name!r} is in no tier of this route")
        if self.cluster and not self.store.url.startswith("postgresql"):
            problems.append("cluster: nodes share their queue through a PostgreSQL store; "
                            f"store.url is {self.store.url.split(':', 1)[0]}")
        defaults = [i for i, r in enumerate(self.routes) if r.match is None]
        if len(defaults) > 1:
            problems.append(f"routes[{defaults[1]}]: a second default route (no match) is never used")
        return problems


def error_path(loc: tuple[Any, ...]) -> str:
    """pydantic location -> 'links[0].hosts'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


def validation_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for err in exc.errors():
        path = error_path(err["loc"])
        if prefix:
            path = prefix if path == "(top)" else f"{prefix}.{path}"
        problems.append(f"{path}: {err['msg']}")
    return problems


def _expand_env(value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else k, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str) and (m := _ENV_REF.match(value)):
        if m.group(1) not in os.environ:
            problems.append(f"{path}: environment variable {m.group(1)} is not set")
            return ""
        return os.environ[m.group(1)]
    return value


def parse(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document; raises ConfigError listing every problem."""
    problems: list[str] = []
    data = _expand_env(data, "", problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems + validation_problems(exc)) from None
    problems += config.route_problems()
    if problems:
        raise ConfigError(problems)
    return config


def load(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse(data)
