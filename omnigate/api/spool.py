"""File spool ingress: a file dropped into `outgoing/` becomes an SMS.

Monitoring systems and old batch jobs write a file; the spool answers with a
file. A file is taken only when it has stopped changing (its size, mtime and
inode stayed the same for `settle` seconds), and names starting with '.' or
ending in .tmp, .part or ~ are never read: write a file under such a name and
rename it into place ("write then rename") and it is taken whole. Filesystem
events (watchfiles: inotify on Linux) make pickup immediate; a full scan every
`rescan` seconds catches what events miss (network filesystems, overflow).

After `Gateway.submit` has committed, `processed/NAME.ok` lists the message
ids (the lines `/send` answers) and the file moves to `processed/` (or is
deleted). A bad file moves to `failed/` beside `NAME.err`, which names the
line and the reason. When the store cannot take it now, the file stays and is
tried again. The file's content, name and mtime make its `client_ref`, so a
crash between the commit and the move sends nothing twice: the file is found
again and answered with the ids stored the first time. (The content alone
would also swallow a second, legitimate alarm with the same text.)

Inbound SMS routed to the spool land in `incoming/`, one file each, in the
same header format, written under a dot name and renamed (atomic for readers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from watchfiles import Change, awatch

from omnigate.config import Config, ConfigError, NumbersConfig, SpoolConfig
from omnigate.model import Accepted, Inbound, Origin, Submit, SubmitError, SubmitRequest
from omnigate.sms.numbers import NumberError, normalise_msisdn

log = logging.getLogger("omnigate.spool")

HEADERS = ("To", "From", "Sender", "Subject", "Flash", "Validity", "Priority", "Charset", "Report")
_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(.*?)[ \t]*$")
_SCHEME = re.compile(r"^(sms|advox|tel|smtp|mailto)[ \t]*:", re.IGNORECASE)
_NUMBERISH = re.compile(r"^\+?[0-9 ()./-]+$")
_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?$", re.IGNORECASE)
_YES = frozenset({"yes", "true", "1", "on"})
_NO = frozenset({"no", "false", "0", "off"})
_PRIORITY_WORDS = {"high": 9, "normal": 0, "low": 0}
_BOM = b"\xef\xbb\xbf"
_SKIP_SUFFIXES = (".tmp", ".part", "~")
_BATCH = 500  # files read, submitted and finished together (their submits share commits)
_RETRY_PAUSE = 5.0  # seconds before a file the store could not take is tried again
_SUBMIT_FIELD_HEADER = {"to": "To", "from": "Sender", "validity": "Validity",
                        "priority": "Priority"}


# -- the file format: pure functions of the bytes -------------------------------


class SpoolFileError(ValueError):
    """A file that cannot be sent; `line` is 1-based, None for the file as a whole."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


@dataclass(slots=True)
class SpoolFile:
    """A parsed spool file: what `Gateway.submit` needs, plus where each header was."""

    to: list[str]
    text: str
    account: str | None = None
    sender: str | None = None
    flash: bool = False
    validity: float | None = None
    priority: int = 0
    report: bool = True
    lines: dict[str, int] = field(default_factory=dict)  # header -> its (first) line


def _decode(data: bytes, declared: tuple[int, str] | None, charset: str,
            fallback: str | None) -> str:
    """The file's text: its Charset header, else `charset`, else `fallback`."""
    if declared:
        line, label = declared
        try:
            return data.decode(label)
        except LookupError:
            raise SpoolFileError(line, f"Charset: unknown charset {label!r}") from None
        except UnicodeDecodeError as exc:
            raise SpoolFileError(_line_of(data, exc.start),
                                 f"bytes not valid {label} (byte {exc.start})") from None
    try:
        return data.decode(charset)
    except UnicodeDecodeError as exc:
        if fallback is None:
            raise SpoolFileError(_line_of(data, exc.start),
                                 f"bytes not valid {charset} (byte {exc.start}); "
                                 f"add a Charset header") from None
        return data.decode(fallback, errors="replace")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _declared_charset(data: bytes) -> tuple[int, str] | None:
    """The Charset header, read before the text is decoded (header names are ASCII)."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r")
        if not line.strip():
            return None
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"charset":
            return number, value.strip().decode("ascii", "replace")
    return None


def _flag(value: str, line: int, name: str) -> bool:
    word = value.lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise SpoolFileError(line, f"{name}: expected yes or no, got {value!r}")


def _duration(value: str, line: int) -> float:
    m = _DURATION.match(value)
    if not m:
        raise SpoolFileError(line, f"Validity: expected seconds or a number with s, m, h, d "
                                   f"or w, got {value!r}")
    seconds = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    if seconds <= 0:
        raise SpoolFileError(line, "Validity: must be more than zero")
    return seconds


def _priority(value: str, line: int) -> int:
    word = value.lower()
    if word in _PRIORITY_WORDS:
        return _PRIORITY_WORDS[word]
    if not word.isdigit() or not 0 <= int(word) <= 9:
        raise SpoolFileError(line, f"Priority: expected 0..9, high or normal, got {value!r}")
    return int(word)


def _address(value: str) -> str:
    """'SMS:0705123456@sms' -> '0705123456'; 'ADVOX:me@example.com' -> 'me@example.com'."""
    return _SCHEME.sub("", value.strip(), count=1).strip()


def parse_spool_file(data: bytes, *, charset: str = "utf-8", fallback: str | None = None
                     ) -> SpoolFile:
    """Header lines, a blank line, the text. Raises SpoolFileError naming the line.

    Both the product sheet's form (``From: ADVOX:me@example.com``,
    ``To: SMS:0705123456@sms``, ``Subject: ...``) and smstools' (``To:
    46701234567``) are read. `To` may list several numbers or group names and
    may be repeated; numbers are checked by the caller. The text is the
    Subject and the body, each kept as written (line breaks included).
    """
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    text = _decode(data, _declared_charset(data), charset, fallback)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = SpoolFile(to=[], text="")
    subject = ""
    body_start = len(lines)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            body_start = number
            break
        m = _HEADER.match(line)
        if not m:
            raise SpoolFileError(number, f"expected a header such as 'To: 46701234567' "
                                         f"(then a blank line, then the text), got {line[:40]!r}")
        name, value = m.group(1).capitalize(), m.group(2)
        if name not in HEADERS:
            raise SpoolFileError(number, f"unknown header {m.group(1)!r} "
                                         f"(known: {', '.join(HEADERS)})")
        out.lines.setdefault(name, number)
        if name == "To":
            tokens = [_address(t) for t in value.split(",")]
            for token in tokens:
                local = token.rpartition("@")[0] if "@" in token else token
                if not local:
                    raise SpoolFileError(number, f"To: empty recipient in {value!r}")
                out.to.append(local)
        elif name == "From":
            out.account = _address(value) or None
        elif name == "Sender":
            out.sender = value or None
        elif name == "Subject":
            subject = value
        elif name == "Flash":
            out.flash = _flag(value, number, name)
        elif name == "Report":
            out.report = _flag(value, number, name)
        elif name == "Validity":
            out.validity = _duration(value, number)
        elif name == "Priority":
            out.priority = _priority(value, number)
    if "To" not in out.lines:
        raise SpoolFileError(None, "no To header: name at least one recipient")
    body = "\n".join(lines[body_start:]).strip("\n")
    if body:  # the line the text starts on, for errors about the text
        out.lines["text"] = body_start + 1 + next(
            i for i, line in enumerate(lines[body_start:]) if line)
    out.text = "\n".join(t for t in (subject, body) if t)
    if not out.text.strip():
        raise SpoolFileError(body_start + 1 if body_start < len(lines) else None,
                             "the text is empty (no Subject and nothing after the blank line)")
    return out


def client_ref(name: str, mtime_ns: int, data: bytes) -> str:
    """Idempotency key of one spool file: the same file found again maps to the same messages."""
    digest = hashlib.sha256(f"{name}\x1f{mtime_ns}\x1f".encode() + data).hexdigest()
    return f"spool:{digest[:40]}"


def skipped(name: str) -> bool:
    """Names a writer is still working on, by convention: never read them."""
    return name.startswith(".") or name.endswith(_SKIP_SUFFIXES)


def inbound_file(inbound: Inbound, ref: str) -> str:
    """An MO message in the spool's header format (UTF-8)."""
    received = inbound.received_at.isoformat(timespec="seconds")
    return (f"From: {inbound.sender}\nTo: {inbound.recipient}\nReceived: {received}\n"
            f"Ref: {ref}\n\n{inbound.text}\n")


# -- the directory ----------------------------------------------------------------


@dataclass(slots=True)
class _Loaded:
    name: str
    data: bytes
    mtime_ns: int


@dataclass(slots=True)
class _Outcome:
    name: str
    accepted: list[Accepted] | None = None
    error: str | None = None  # the .err text
    retry: str | None = None  # temporary: the file stays


class Spool:
    """Watches `outgoing/`, submits settled files, answers with .ok/.err files."""

    def __init__(self, config: SpoolConfig, *, numbers: NumbersConfig, submit: Submit) -> None:
        self.config = config
        self.root = Path(config.dir)
        self.outgoing = self.root / "outgoing"
        self.processed = self.root / "processed"
        self.failed = self.root / "failed"
        self.incoming = self.root / "incoming"
        self._submit = submit
        self._region = numbers.default_region
        self._mobile_only = numbers.mobile_only
        self.groups: dict[str, list[str]] = {}
        # on-call schedule names (set by the gateway): 'To: NAME' -> schedule:NAME, which
        # Gateway.submit resolves at send time (omnigate/oncall/)
        self.schedules: frozenset[str] = frozenset()
        problems = []
        for g, group in enumerate(config.groups):
            members: list[str] = []
            for i, raw in enumerate(group.numbers):
                try:
                    number = self._number(raw)
                except NumberError as exc:
                    problems.append(f"spool.groups[{g}].numbers[{i}]: {exc.reason}")
                    continue
                if number not in members:
                    members.append(number)
            self.groups[group.name] = members
        if problems:
            raise ConfigError(problems)
        # name -> (size, mtime_ns, inode) and when that was first seen (monotonic)
        self._watching: dict[str, tuple[tuple[int, int, int], float]] = {}
        self._not_before: dict[str, float] = {}  # files the store could not take, until
        # Files that may have been submitted already: there at start (a crash may have
        # come between commit and move) or tried before. Their client_ref is looked up
        # first; a file that arrived while we watch is new (the store's unique key still
        # answers a duplicate as stored).
        self._maybe_known: set[str] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _number(self, raw: str) -> str:
        return normalise_msisdn(raw, self._region, mobile_only=self._mobile_only)

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        for d in (self.outgoing, self.processed, self.failed, self.incoming):
            d.mkdir(parents=True, exist_ok=True)
        if not log.isEnabledFor(logging.DEBUG):  # it logs every batch of events at info
            logging.getLogger("watchfiles.main").setLevel(logging.WARNING)
        self._stop.clear()
        self._scan()
        self._maybe_known = set(self._watching)
        self._tasks = [asyncio.create_task(self._run(), name="spool"),
                       asyncio.create_task(self._watch(), name="spool-watch")]
        log.info("spool: watching %s (settle %.2fs, rescan every %.0fs)", self.outgoing,
                 self.config.settle, self.config.rescan)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop looking; a batch being submitted finishes within `grace` (else it is
        found again at the next start, and its client_ref keeps it from being doubled)."""
        self._stop.set()
        self._wake.set()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- finding settled files ----------------------------------------------

    async def _watch(self) -> None:
        try:
            async for changes in awatch(self.outgoing, watch_filter=None, recursive=False,
                                        debounce=100, step=10, stop_event=self._stop):
                for change, path in changes:
                    name = os.path.basename(path)
                    if change is not Change.deleted and not skipped(name):
                        self._watching.setdefault(name, ((-1, -1, -1), time.monotonic()))
                self._wake.set()
        except Exception as exc:  # inotify limits and the like: the rescan still works
            log.warning("spool: file events unavailable (%s); scanning every %.0fs only",
                        exc, self.config.rescan)

    def _scan(self) -> None:
        try:
            names = os.listdir(self.outgoing)
        except OSError as exc:
            log.error("spool: cannot list %s: %s", self.outgoing, exc)
            return
        now = time.monotonic()
        for name in names:
            if not skipped(name):
                self._watching.setdefault(name, ((-1, -1, -1), now))

    def _settled(self) -> list[str]:
        """Files unchanged for `settle` seconds; the others keep being watched."""
        now = time.monotonic()
        ready = []
        for name, (key, since) in list(self._watching.items()):
            if self._not_before.get(name, 0.0) > now:
                continue
            try:
                st = os.stat(self.outgoing / name)
            except OSError as exc:  # gone, or unreadable: the next rescan looks again
                if not isinstance(exc, FileNotFoundError):
                    log.warning("spool: cannot stat %s: %s", name, exc)
                del self._watching[name]
                continue
            if not os.path.isfile(self.outgoing / name):
                del self._watching[name]
                continue
            current = (st.st_size, st.st_mtime_ns, st.st_ino)
            if current != key:  # new, or still being written: the clock starts again
                self._watching[name] = (current, now)
                if self.config.settle == 0:
                    ready.append(name)
            elif now - since >= self.config.settle:
                ready.append(name)
        return ready

    async def _run(self) -> None:
        next_scan = time.monotonic() + self.config.rescan
        tick = max(self.config.settle / 3, 0.01)
        while not self._stop.is_set():
            if not self._watching:
                timeout = max(0.0, next_scan - time.monotonic())
            else:
                timeout = min(tick, max(0.0, next_scan - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._stop.is_set():
                break
            if time.monotonic() >= next_scan:
                self._scan()
                next_scan = time.monotonic() + self.config.rescan
            ready = self._settled()
            for i in range(0, len(ready), _BATCH):
                try:
                    await self._take(ready[i:i + _BATCH])
                except Exception:
                    log.exception("spool: a batch of %d files failed; they are tried again",
                                  len(ready[i:i + _BATCH]))

    # -- taking files -------------------------------------------------------

    async def _take(self, names: list[str]) -> None:
        keys = {name: self._watching[name][0] for name in names}
        loaded, dropped = await asyncio.to_thread(self._read, keys)
        for name in dropped:
            self._watching.pop(name, None)
        outcomes = await asyncio.gather(*(self._submit_file(f) for f in loaded))
        await asyncio.to_thread(self._finish, outcomes)
        now = time.monotonic()
        sent = failed = 0
        for o in outcomes:
            if o.retry is not None:
                self._not_before[o.name] = now + _RETRY_PAUSE
                continue
            self._watching.pop(o.name, None)
            self._not_before.pop(o.name, None)
            self._maybe_known.discard(o.name)
            if o.accepted is not None:
                sent += 1
            else:
                failed += 1
        if sent or failed:
            log.info("spool: %d files sent, %d failed", sent, failed)

    def _read(self, keys: dict[str, tuple[int, int, int]]) -> tuple[list[_Loaded], list[str]]:
        """The files whose bytes are still the settled ones, and the names gone or
        unreadable (the next rescan looks again); runs in a thread. A file that changed
        meanwhile is left to settle again."""
        loaded, dropped = [], []
        limit = self.config.max_size
        for name, key in keys.items():
            try:
                with open(self.outgoing / name, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    data = fh.read(limit + 1)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):
                    log.warning("spool: cannot read %s: %s", name, exc)
                dropped.append(name)
                continue
            if (st.st_size, st.st_mtime_ns, st.st_ino) == key:
                loaded.append(_Loaded(name, data, st.st_mtime_ns))
        return loaded, dropped

    async def _submit_file(self, f: _Loaded) -> _Outcome:
        if len(f.data) > self.config.max_size:
            return _Outcome(f.name, error=f"the file is larger than {self.config.max_size} bytes")
        try:
            parsed = parse_spool_file(f.data, charset=self.config.charset,
                                      fallback=self.config.fallback_charset)
            to = self._recipients(parsed)
        except SpoolFileError as exc:
            return _Outcome(f.name, error=str(exc))
        request = SubmitRequest(
            to=to, text=parsed.text, origin=Origin.SPOOL,
            sender=parsed.sender or self.config.sender, account=parsed.account,
            flash=parsed.flash, priority=parsed.priority, validity=parsed.validity,
            report=parsed.report, client_ref=client_ref(f.name, f.mtime_ns, f.data),
            client_ref_new=f.name not in self._maybe_known)
        self._maybe_known.add(f.name)
        try:
            return _Outcome(f.name, accepted=await self._submit(request))
        except SubmitError as exc:
            if exc.kind == "unavailable":
                log.warning("spool: %s waits: %s", f.name, exc.reason)
                return _Outcome(f.name, retry=exc.reason)
            label = _SUBMIT_FIELD_HEADER.get(exc.field, exc.field)
            line = parsed.lines.get(label)
            if exc.field == "text":
                line = parsed.lines.get("Subject", parsed.lines.get("text"))
            reason = (exc.reason if exc.reason.lower().startswith(label.lower())
                      else f"{label}: {exc.reason}")
            return _Outcome(f.name, error=str(SpoolFileError(line, reason)))

    def _recipients(self, parsed: SpoolFile) -> list[str]:
        """Numbers (E.164) and groups expanded, each once; errors name the To line."""
        line = parsed.lines["To"]
        out: list[str] = []
        for token in parsed.to:
            group = self.groups.get(token.lower())
            if group is not None:
                numbers = group
            elif token.lower() in self.schedules:
                numbers = [f"schedule:{token.lower()}"]
            elif not _NUMBERISH.match(token):
                raise SpoolFileError(line, f"To: {token!r} is neither a number nor a group")
            else:
                try:
                    numbers = [self._number(token)]
                except NumberError as exc:
                    raise SpoolFileError(line, f"To: {exc.reason}") from None
            out += [n for n in numbers if n not in out]
        if len(out) > self.config.max_recipients:
            raise SpoolFileError(line, f"To: {len(out)} numbers; at most "
                                       f"{self.config.max_recipients} per file")
        return out

    def _finish(self, outcomes: list[_Outcome]) -> None:
        """Answer files and move them (runs in a thread). Each answer is written before
        its file moves, so a crash in between leaves the file to be answered again."""
        for o in outcomes:
            try:
                if o.accepted is not None:
                    self._done(o.name, o.accepted)
                elif o.error is not None:
                    self._fail(o.name, o.error)
            except FileNotFoundError:
                log.info("spool: %s was removed by someone else", o.name)
            except OSError as exc:
                log.error("spool: cannot move %s: %s (it is tried again; its client_ref "
                          "keeps it from being sent twice)", o.name, exc)

    def _done(self, name: str, accepted: list[Accepted]) -> None:
        target = self.processed / name
        if target.exists():  # an earlier file of the same name: keep both
            target = self.processed / f"{name}.{accepted[0].id}"
        _write_atomic(target.with_name(target.name + ".ok"),
                      "".join(f"OK {a.id} {a.to} {a.parts}\n" for a in accepted))
        if self.config.processed == "delete":
            os.unlink(self.outgoing / name)
        else:
            os.replace(self.outgoing / name, target)

    def _fail(self, name: str, reason: str) -> None:
        target = self.failed / name
        if target.exists():
            target = self.failed / f"{name}.{time.time_ns()}"
        _write_atomic(target.with_name(target.name + ".err"), reason + "\n")
        os.replace(self.outgoing / name, target)
        log.warning("spool: %s failed: %s", name, reason)

    # -- inbound ------------------------------------------------------------

    async def deliver_inbound(self, inbound: Inbound, ref: str | None = None) -> Path:
        """Write one MO message to `incoming/` (atomically); the file's path.

        `ref` names the file and its Ref header; None makes a unique one.
        Raises OSError when the directory cannot take it (the caller retries).
        """
        ref = ref or (f"{inbound.received_at:%Y%m%d-%H%M%S}-"
                      f"{inbound.sender.lstrip('+')}-{uuid.uuid4().hex[:8]}")
        if "/" in ref or ref.startswith("."):
            raise ValueError(f"ref {ref!r} cannot name a file")
        return await asyncio.to_thread(write_inbound_file, self.incoming, inbound, ref)


def write_inbound_file(directory: Path, inbound: Inbound, ref: str) -> Path:
    """One MO message as `directory/ref` in the spool's format, durably (any directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ref
    _write_atomic(path, inbound_file(inbound, ref), True)
    return path


def _write_atomic(path: Path, text: str, durable: bool = False) -> None:
    """Write under a dot name, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def config_problems(config: Config) -> list[str]:
    """What only building the spool finds ([spool] group numbers), for check-config."""
    if config.spool is None:
        return []
    try:
        Spool(config.spool, numbers=config.numbers, submit=_never_submit)
    except ConfigError as exc:
        return exc.problems
    return []


async def _never_submit(request: SubmitRequest) -> list[Accepted]:
    raise SubmitError("service", "checking the config only", kind="unavailable")
