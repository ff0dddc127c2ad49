"""Handlers of the web pages (server-rendered, a little JavaScript, no build step).

Every page goes through `_page`, which finds the session, sends strangers to the
login page, refuses non-admins on admin pages, and checks the CSRF token of
every POST. Sending goes through `Gateway.submit` with origin `web`, one
recipient at a time, so each recipient gets its own answer (one bad number
does not stop the rest) and the account's policy applies as on every ingress.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from omnigate.accounts.book import AccountBook
from omnigate.api.auth import Credentials
from omnigate.api.console import copy_request
from omnigate.api.http import AUTHENTICATOR, MessageReader
from omnigate.config import WebConfig
from omnigate.model import Origin, Status, Submit, SubmitError, SubmitRequest
from omnigate.store import Store
from omnigate.web import PREFIX
from omnigate.web.book import AddressBook, BookError, Contact, from_csv, groups_of, to_csv
from omnigate.web.session import COOKIE, LOGIN_COOKIE, Session, Sessions, same_token

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
_SESSION: Any = (web.RequestKey("web_session", object) if hasattr(web, "RequestKey")
                 else "omnigate.web_session")
_RECIPIENTS_MAX = 500  # one form; bigger mailings belong to the API or the spool
_TEXT_MAX = 10_000
_LIST_LIMIT = 200
_RECENT = 10
# Statuses whose messages may be sent again: finished, and either failed or gone out.
RESENDABLE = frozenset({"failed", "undelivered", "expired", "rejected", "sent", "delivered"})
_SEPARATORS = re.compile(r"[\s,;]+")
_HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store"}

Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def add_web(app: web.Application, config: WebConfig, *, submit: Submit, reader: MessageReader,
            store: Store, accounts: AccountBook, links: Callable[[], list[dict[str, Any]]],
            suspend: Callable[[str, bool], None],
            cluster: Callable[[], Awaitable[dict[str, Any]]] | None = None) -> None:
    """Mount the pages under PREFIX on the HTTP ingress's app; `cluster` gives the nodes
    of a cluster (`Cluster.view`) for the Links page."""
    pages = _Pages(config, submit, reader, AddressBook(store.engine), accounts, links, suspend,
                   cluster)
    app.on_startup.append(pages.open)
    get, post = pages.get, pages.post
    for method, path, handler in (
            ("GET", "", pages.home), ("GET", "/", pages.home),
            ("GET", "/login", pages.login_form), ("POST", "/login", pages.login),
            ("POST", "/logout", post(pages.logout)),
            ("GET", "/send", get(pages.send_form)), ("POST", "/send", post(pages.send)),
            ("GET", "/messages", get(pages.messages)),
            ("GET", "/messages/{id}", get(pages.message)),
            ("POST", "/messages/resend", post(pages.resend)),
            ("GET", "/links", get(pages.links_page, admin=True)),
            ("POST", "/links/{name}/{action}", post(pages.link_action, admin=True)),
            ("GET", "/inbound", get(pages.inbound, admin=True)),
            ("GET", "/book", get(pages.book_page)), ("POST", "/book", post(pages.book_add)),
            ("POST", "/book/{id}/delete", post(pages.book_delete)),
            ("GET", "/book.csv", get(pages.book_export)),
            ("POST", "/book/import", post(pages.book_import))):
        app.router.add_route(method, PREFIX + path, handler)
    app.router.add_static(PREFIX + "/static", _HERE / "static")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


class _Pages:
    def __init__(self, config: WebConfig, submit: Submit, reader: MessageReader, book: AddressBook,
                 accounts: AccountBook, links: Callable[[], list[dict[str, Any]]],
                 suspend: Callable[[str, bool], None],
                 cluster: Callable[[], Awaitable[dict[str, Any]]] | None) -> None:
        self.config = config
        self.cluster = cluster
        self.sessions = Sessions(config.session_ttl)
        self.submit = submit
        self.reader = reader
        self.book = book
        self.accounts = accounts
        self.links = links
        self.suspend = suspend
        self.env = Environment(loader=FileSystemLoader(_HERE / "templates"),
                               autoescape=select_autoescape(default=True), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.globals["prefix"] = PREFIX
        self.env.filters["when"] = _when

    async def open(self, _app: web.Application) -> None:
        await self.book.open()

    # -- plumbing -------------------------------------------------------------

    def render(self, name: str, request: web.Request, status: int = 200,
               **values: Any) -> web.Response:
        session = request.get(_SESSION)
        html = self.env.get_template(name).render(session=session, path=request.path, **values)
        return web.Response(text=html, status=status, content_type="text/html",
                            headers=_HEADERS)

    def _session(self, request: web.Request) -> Session | None:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is not None:
            request[_SESSION] = session
        return session

    def get(self, handler: Handler, *, admin: bool = False
            ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def page(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                raise web.HTTPSeeOther(f"{PREFIX}/login")
            if admin and not session.admin:
                return self.render("error.html", request, 403,
                                   reason="This page needs an account with the admin role.")
            return await handler(request, session)
        return page

    def post(self, handler: Handler, *, admin: bool = False
             ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def action(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            try:
                form = await request.post()
            except ValueError:  # undecodable bytes, broken multipart
                return self.render("error.html", request, 400, reason="The form data was "
                                   "malformed.")
            if session is None or not same_token(_text(form.get("csrf")), session.csrf):
                log.warning("web: %s %s refused: no session or wrong CSRF token from %s",
                            request.method, request.path, request.remote)
                return self.render("error.html", request, 403,
                                   reason="Your session has ended or the form is stale: "
                                          "log in and try again.")
            if admin and not session.admin:
                return self.render("error.html", request, 403,
                                   reason="This action needs an account with the admin role.")
            return await handler(request, session)
        return action

    # -- login ----------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        where = "send" if self._session(request) else "login"
        raise web.HTTPSeeOther(f"{PREFIX}/{where}")

    async def login_form(self, request: web.Request, *, error: str | None = None,
                         status: int = 200) -> web.Response:
        token = request.cookies.get(LOGIN_COOKIE) or Sessions.new_token()
        response = self.render("login.html", request, status, token=token, error=error)
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path=PREFIX, httponly=True,
                            samesite="Strict", secure=self.config.secure_cookie)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not same_token(_text(form.get("csrf")), request.cookies.get(LOGIN_COOKIE)):
            return await self.login_form(request, error="The form was stale; please try again.",
                                         status=403)
        username = _text(form.get("username")).strip()
        auth = request.app[AUTHENTICATOR]
        try:
            name = await auth.authenticate(
                Credentials(username=username, password=_text(form.get("password"))),
                request.remote)
        except SubmitError as e:
            log.info("web: login of %r from %s refused: %s", username[:40], request.remote,
                     e.reason)
            return await self.login_form(request, error="Wrong name or password.", status=401)
        profile = self.accounts.profiles.get(name)
        if profile is None or not profile.config.enabled:
            log.info("web: login of %r refused: account disabled", name)
            return await self.login_form(request, error="This account is disabled.", status=403)
        sid, _ = self.sessions.create(name, profile.config.role == "admin")
        log.info("web: %s logged in from %s", name, request.remote)
        response = web.HTTPSeeOther(f"{PREFIX}/send")
        response.set_cookie(COOKIE, sid, path=PREFIX, httponly=True, samesite="Strict",
                            secure=self.config.secure_cookie)
        response.del_cookie(LOGIN_COOKIE, path=PREFIX)
        raise response

    async def logout(self, request: web.Request, session: Session) -> web.StreamResponse:
        self.sessions.drop(request.cookies.get(COOKIE))
        log.info("web: %s logged out", session.account)
        response = web.HTTPSeeOther(f"{PREFIX}/login")
        response.del_cookie(COOKIE, path=PREFIX)
        raise response

    # -- send -----------------------------------------------------------------

    async def _recent(self, session: Session) -> list[str]:
        rows = await self.reader.list_messages(status=None, to=None, since=None, limit=200,
                                               account=session.account)
        seen = dict.fromkeys(r["to"] for r in rows)
        return list(seen)[:_RECENT]

    async def send_form(self, request: web.Request, session: Session, *,
                        results: list[dict[str, Any]] | None = None, error: str | None = None,
                        values: dict[str, Any] | None = None, status: int = 200
                        ) -> web.Response:
        contacts = await self.book.visible(session.account)
        values = values or {"numbers": request.query.get("to", "")}
        return self.render("send.html", request, status, contacts=contacts,
                           groups=groups_of(contacts), recent=await self._recent(session),
                           results=results, error=error, values=values)

    async def send(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await request.post()
        values = {k: _text(form.get(k)) for k in ("numbers", "text", "sender", "schedule_at")}
        # Browsers submit a textarea's line breaks as CRLF but count them (and show them to
        # the counter) as LF; send what the person saw counted.
        values["text"] = values["text"].replace("\r\n", "\n")
        values["flash"] = form.get("flash") == "on"
        values["contact"] = set(form.getall("contact", []))
        values["group"] = set(form.getall("group", []))
        values["recent"] = set(form.getall("recent", []))
        try:
            recipients = await self._recipients(session, values)
            text = values["text"]
            if not text.strip():
                raise SubmitError("text", "type a message")
            if len(text) > _TEXT_MAX:
                raise SubmitError("text", f"at most {_TEXT_MAX} characters")
            schedule_at = _schedule(values["schedule_at"])
        except SubmitError as e:
            return await self.send_form(request, session, error=f"{e.field}: {e.reason}",
                                        values=values, status=400)
        results = []
        for number, name in recipients:
            result: dict[str, Any] = {"to": number, "name": name}
            try:
                accepted = await self.submit(SubmitRequest(
                    to=[number], text=text, origin=Origin.WEB, sender=values["sender"] or None,
                    account=session.account, flash=values["flash"], schedule_at=schedule_at,
                    client=request.remote))
                result.update(id=accepted[0].id, status=accepted[0].status.value,
                              parts=accepted[0].parts)
            except SubmitError as e:
                result["error"] = f"{e.field}: {e.reason}"
            results.append(result)
        sent = sum("id" in r for r in results)
        log.info("web: %s sent to %d of %d recipients", session.account, sent, len(results))
        return await self.send_form(request, session, results=results,
                                    values=values if sent < len(results) else None)

    async def _recipients(self, session: Session, values: dict[str, Any]
                          ) -> list[tuple[str, str]]:
        """(number, name) of every recipient picked, each number once, in form order."""
        book = await self.book.visible(session.account)
        by_id = {str(c.id): c for c in book}
        groups = groups_of(book)
        picked: dict[str, str] = {}
        for number in _SEPARATORS.split(values["numbers"]):
            if number:
                picked.setdefault(number, "")
        for number in sorted(values["recent"]):
            picked.setdefault(number, "")
        chosen: list[Contact] = []
        for cid in values["contact"]:
            if cid not in by_id:
                raise SubmitError("contact", f"no contact {cid[:20]} in your address book")
            chosen.append(by_id[cid])
        for group in values["group"]:
            if group not in groups:
                raise SubmitError("group", f"no group {group[:40]!r} in your address book")
            chosen.extend(groups[group])
        for contact in chosen:
            picked.setdefault(contact.number, contact.name)
        if not picked:
            raise SubmitError("recipients", "pick a contact or group, or type a number")
        if len(picked) > _RECIPIENTS_MAX:
            raise SubmitError("recipients", f"at most {_RECIPIENTS_MAX} at once")
        return list(picked.items())

    # -- messages -------------------------------------------------------------

    async def messages(self, request: web.Request, session: Session, *,
                       notice: list[str] | None = None) -> web.Response:
        q = {k: request.query.get(k, "").strip()
             for k in ("number", "text", "status", "account", "link", "since")}
        error = None
        rows: list[dict[str, Any]] = []
        try:
            since = _since(q["since"])
            if q["status"] and q["status"] not in {s.value for s in Status}:
                raise SubmitError("status", "pick one of the list")
            rows = await self.reader.list_messages(
                status=q["status"] or None, to=q["number"] or None, since=since,
                limit=_LIST_LIMIT, account=(q["account"] if session.admin else session.account)
                or None, link=q["link"] or None, text=q["text"] or None)
        except SubmitError as e:
            error = f"{e.field}: {e.reason}"
        return self.render("messages.html", request, 400 if error else 200, rows=rows, q=q,
                           error=error, notice=notice, statuses=[s.value for s in Status],
                           resendable=RESENDABLE)

    async def _own_message(self, session: Session, id_text: str) -> dict[str, Any] | None:
        try:
            msg = await self.reader.get_message(int(id_text))
        except (ValueError, OverflowError):
            return None
        if msg is None or (not session.admin and msg["account"] != session.account):
            return None
        return msg

    async def message(self, request: web.Request, session: Session) -> web.Response:
        msg = await self._own_message(session, request.match_info["id"])
        if msg is None:
            return self.render("error.html", request, 404, reason="No such message.")
        return self.render("message.html", request, msg=msg, resendable=RESENDABLE,
                           final={s.value for s in Status if s.final})

    async def resend(self, request: web.Request, session: Session) -> web.StreamResponse:
        """Queue copies of the selected messages anew (as their account, same sender)."""
        form = await request.post()
        notice = []
        ids = form.getall("id", [])
        if not ids:
            notice.append("Select the messages to send again.")
        for id_text in ids[:_LIST_LIMIT]:
            msg = await self._own_message(session, _text(id_text))
            if msg is None or msg["status"] not in RESENDABLE:
                notice.append(f"#{_text(id_text)[:20]}: not a message you can send again")
                continue
            try:
                accepted = await self.submit(copy_request(
                    msg, origin=Origin.WEB, account=session.account, client=request.remote))
                notice.append(f"#{msg['id']} sent again as #{accepted[0].id}")
                log.info("web: %s sent message %d again as %d", session.account, msg["id"],
                         accepted[0].id)
            except SubmitError as e:
                notice.append(f"#{msg['id']}: {e.field}: {e.reason}")
        return await self.messages(request, session, notice=notice)

    # -- links and inbound (admins) ---------------------------------------------

    async def links_page(self, request: web.Request, session: Session, *,
                         notice: str | None = None) -> web.Response:
        rows = sorted(self.links(), key=lambda link: link["name"])
        shown = {"name", "type", "state", "suspended", "circuit", "in_flight", "capacity"}
        for row in rows:
            row["details"] = ", ".join(f"{k} {v}" for k, v in sorted(row.items())
                                       if k not in shown and not isinstance(v, dict | list))
        nodes, error = None, None
        if self.cluster is not None:
            try:
                nodes = (await self.cluster())["nodes"]
            except (OSError, asyncpg.PostgresError) as e:
                error = f"cluster: the store cannot be read ({type(e).__name__})"
        return self.render("links.html", request, rows=rows, notice=notice, nodes=nodes,
                           error=error)

    async def link_action(self, request: web.Request, session: Session) -> web.StreamResponse:
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in {"suspend", "resume"}:
            return self.render("error.html", request, 404, reason="No such action.")
        try:
            self.suspend(name, action == "suspend")
        except KeyError:
            return self.render("error.html", request, 404, reason=f"No link {name[:40]!r}.")
        log.info("web: %s %sed link %s", session.account, action.removesuffix("e"), name)
        word = "suspended" if action == "suspend" else "resumed"
        return await self.links_page(request, session, notice=f"Link {name} {word}.")

    async def inbound(self, request: web.Request, session: Session) -> web.Response:
        sender = request.query.get("sender", "").strip() or None
        rows = await self.reader.list_inbound(limit=_LIST_LIMIT, sender=sender, status=None)
        return self.render("inbound.html", request, rows=rows, sender=sender or "")

    # -- address book -----------------------------------------------------------

    async def book_page(self, request: web.Request, session: Session, *, error: str | None = None,
                   notice: str | None = None, status: int = 200) -> web.Response:
        contacts = await self.book.visible(session.account)
        return self.render("book.html", request, status, contacts=contacts,
                           groups=groups_of(contacts), error=error, notice=notice)

    async def book_add(self, request: web.Request, session: Session) -> web.Response:
        form = await request.post()
        shared = form.get("shared") == "on"
        if shared and not session.admin:
            return await self.book_page(request, session, error="Only admins add shared contacts.",
                                   status=403)
        try:
            await self.book.add("" if shared else session.account, _text(form.get("name")),
                                _text(form.get("number")), _text(form.get("groups")))
        except BookError as e:
            return await self.book_page(request, session, error=str(e), status=400)
        return await self.book_page(request, session, notice=f"Added {_text(form.get('name'))}.")

    async def book_delete(self, request: web.Request, session: Session) -> web.Response:
        try:
            id = int(request.match_info["id"])
        except ValueError:
            id = 0
        if not await self.book.remove(id, session.account, session.admin):
            return await self.book_page(request, session, error="No such contact of yours.",
                                   status=404)
        return await self.book_page(request, session, notice="Contact deleted.")

    async def book_export(self, request: web.Request, session: Session) -> web.Response:
        body = to_csv(await self.book.visible(session.account))
        return web.Response(text=body, content_type="text/csv", headers={
            **_HEADERS, "Content-Disposition": 'attachment; filename="contacts.csv"'})

    async def book_import(self, request: web.Request, session: Session) -> web.Response:
        upload = (await request.post()).get("file")
        if not isinstance(upload, web.FileField):
            return await self.book_page(request, session, error="file: choose a CSV file", status=400)
        try:
            rows = from_csv(upload.file.read().decode("utf-8-sig"), session.account,
                            session.admin)
        except UnicodeDecodeError:
            return await self.book_page(request, session, error="file: not UTF-8 text", status=400)
        except BookError as e:
            return await self.book_page(request, session, error=str(e), status=400)
        await self.book.add_many(rows)
        log.info("web: %s imported %d contacts", session.account, len(rows))
        return await self.book_page(request, session, notice=f"Imported {len(rows)} contacts.")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _schedule(value: str) -> datetime | None:
    """A datetime-local value (server time) or ISO 8601 with offset; None when empty."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise SubmitError("schedule_at", "a date and time, e.g. 2026-05-01T08:30") from None
    return t if t.tzinfo else t.astimezone()


def _since(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone()
    except ValueError:
        raise SubmitError("since", "a date, e.g. 2026-05-01") from None
