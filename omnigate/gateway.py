"""The composition root: builds everything from the config and runs its lifecycle.

Nothing imports this module. Ingresses get `Gateway.submit`, links get the
dispatcher as their `LinkEvents`; neither sees the other.

Start order: store, simulators (so a link bound to one finds it), links,
dispatcher (crash recovery), ingresses. Stop order (STYLE §10): ingresses stop
taking work, the dispatcher stops handing out parts, links finish their
windows and unbind (then are terminated after a grace time), the last results
are committed, the store is closed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.engine import make_url

from omnigate import __version__, carriers
from omnigate.accounts.admin import add_admin_routes
from omnigate.accounts.book import AccountBook
from omnigate.api.auth import Authenticator
from omnigate.api.http import AUTHENTICATOR, build_app
from omnigate.api.smpp import SmppServer
from omnigate.api.smtp import SmtpIngress
from omnigate.api.spool import Spool
from omnigate.api.sqltable import SqlSource
from omnigate.api.tcp import TcpIngress
from omnigate.carriers.base import Link, LinkState
from omnigate.cluster import Cluster
from omnigate.config import Config, ConfigError, SimulatorConfig, split_hostport
from omnigate.delivery.dlr_url import DlrNotifier
from omnigate.delivery.email import Mailer
from omnigate.delivery.inbound import Targets
from omnigate.dispatcher import Dispatcher
from omnigate.ids import IdGenerator
from omnigate.inbox import Inbox
from omnigate.intake import client_keys, prepare, recipients
from omnigate.metrics import Metrics
from omnigate.model import Accepted, Status, SubmitError, SubmitRequest
from omnigate.oncall.http import add_oncall_routes
from omnigate.oncall.service import OnCallService
from omnigate.routing.dialog import Dialogs
from omnigate.routing.match import Match, TimeWindow
from omnigate.routing.outbound import Route, Router
from omnigate.sim.base import Simulator
from omnigate.sim.cimd2 import Cimd2Simulator
from omnigate.sim.httpprovider import HttpProviderSimulator
from omnigate.sim.modem import ModemSimulator
from omnigate.sim.smpp import SmscSimulator
from omnigate.sim.ucp import UcpSimulator
from omnigate.sms.numbers import NumberError, normalise_msisdn
from omnigate.store import Store
from omnigate.store.writer import ConstraintError, StoreUnavailable
from omnigate.trafficlog import TrafficLog
from omnigate.web.pages import add_web

log = logging.getLogger("omnigate")


def build_simulator(config: SimulatorConfig) -> Simulator[Any, Any]:
    host, port = split_hostport(config.listen)
    common = {"host": host, "port": port, "password": config.password, "dlr": config.dlr,
              "dlr_delay": config.dlr_delay}
    if config.type == "smpp":
        return SmscSimulator(system_id=config.system_id, **common)
    if config.type == "http":
        return HttpProviderSimulator(user=config.system_id, **common)  # type: ignore[return-value]
    if config.type == "modem":  # `password` is the SIM PIN
        return ModemSimulator(**common)  # type: ignore[arg-type]
    cls = Cimd2Simulator if config.type == "cimd2" else UcpSimulator
    return cls(user=config.system_id, **common)


def build_routes(config: Config) -> list[Route]:
    routes = []
    for i, r in enumerate(config.routes):
        m = r.match
        match = Match() if m is None else Match(
            prefixes=tuple(m.prefix), patterns=tuple(re.compile(p) for p in m.regex),
            origins=frozenset(m.origin), accounts=frozenset(m.account),
            senders=frozenset(m.sender), flash=m.flash, min_priority=m.min_priority,
            window=TimeWindow.parse(m.days, m.hours, m.timezone or config.routing.timezone)
            if m.days or m.hours else None)
        routes.append(Route(name=r.name or f"routes[{i}]", tiers=tuple(tuple(t) for t in r.tiers),
                            match=match, fallback_after=r.fallback_after, weights=r.weights))
    return routes


class MessageReader:
    """The store's reads for the API, showing `sending` for parts in a window."""

    def __init__(self, store: Store, dispatcher: Dispatcher, region: str) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._region = region

    def _overlay(self, msg: dict[str, Any]) -> dict[str, Any]:
        if msg["id"] in self._dispatcher.in_flight:
            msg["status"] = Status.SENDING.value
        return msg

    async def get_message(self, id: int) -> dict[str, Any] | None:
        msg = await self._store.get_message(id)
        return self._overlay(msg) if msg else None

    async def list_messages(self, *, status: str | None, to: str | None,
                            since: datetime | None, limit: int, account: str | None = None,
                            link: str | None = None,
                            text: str | None = None) -> list[dict[str, Any]]:
        if to:
            try:
                to = normalise_msisdn(to, self._region, mobile_only=False)
            except NumberError as exc:
                raise SubmitError("to", exc.reason) from None
        rows = await self._store.list_messages(status=status, to=to, since=since, limit=limit,
                                               account=account, link=link, text=text)
        return [self._overlay(r) for r in rows]

    async def list_inbound(self, *, limit: int, sender: str | None,
                           status: str | None) -> list[dict[str, Any]]:
        return await self._store.list_inbound(limit=limit, sender=sender, status=status)

    async def get_inbound(self, reference: str) -> dict[str, Any] | None:
        return await self._store.get_inbound(reference)


class Gateway:
    def __init__(self, config: Config) -> None:
        resolved, problems = carriers.resolve(config.links)
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.node = config.node.name
        self.metrics = Metrics()
        self.ids = IdGenerator(config.node.id)
        self.simulators = [build_simulator(s) for s in config.simulators]
        self.links: dict[str, Link] = {}
        self._link_specs = resolved
        self.store: Store | None = None
        self.dispatcher: Dispatcher | None = None
        self.dlr: DlrNotifier | None = None
        self.router: Router | None = None
        self.cluster: Cluster | None = None
        self.dialogs = Dialogs(config.inbound.dialog_numbers, config.inbound.dialog_origins)
        self.inbox: Inbox | None = None
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        self.oncall = (OnCallService(config.schedules, numbers=config.numbers, submit=self.submit)
                       if config.schedules else None)
        # built here so a bad [smtp] (numbers in groups, TLS files) fails before start
        self.smtp = (SmtpIngress(config.smtp, accounts=config.accounts, numbers=config.numbers,
                                 messages=config.messages, submit=self.submit)
                     if config.smtp else None)
        self.tcp = (TcpIngress(config.tcp, accounts=config.accounts, numbers=config.numbers,
                               submit=self.submit) if config.tcp else None)
        self.smpp = (SmppServer(config.smpp_server, accounts=config.accounts, submit=self.submit)
                     if config.smpp_server else None)
        self.spool = (Spool(config.spool, numbers=config.numbers, submit=self.submit)
                      if config.spool else None)
        if self.oncall:  # NAME@domain and a spool's 'To: NAME' name schedules too
            if self.smtp:
                self.smtp.handler.recipients.schedules = self.oncall.names
            if self.spool:
                self.spool.schedules = self.oncall.names
        self.sql = [SqlSource(s, store_url=config.store.url, submit=self.submit)
                    for s in config.sql]
        self.accounts = AccountBook(config.accounts, config.billing)
        self.mailer = (Mailer(config.mail, sms_domain=config.smtp.domains[0] if config.smtp else None,
                              own_domains=frozenset(config.smtp.domains if config.smtp else ()),
                              notice_addresses={a.name: a.notice_email for a in config.accounts
                                                if a.notice_email})
                       if config.mail else None)
        self._accepting = False
        self._started_at = time.time()

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Start everything or nothing: a failure stops what was started and raises."""
        try:
            await self._start()
        except BaseException:
            await self.stop(grace=1.0)
            raise

    async def _start(self) -> None:
        cfg = self.config
        self.store = await Store.open(cfg.store.url, commit_interval=cfg.store.commit_interval,
                                      max_batch=cfg.store.max_batch)
        await self.accounts.open(self.store)
        if self.tcp:  # accounts and keys made through the admin API log in on TCP too
            self.accounts.listeners.append(self.tcp.authenticator.reload)
            self.tcp.authenticator.reload(self.accounts.configs())
        for sim in self.simulators:
            await sim.start()
            log.info("SMSC simulator on %s:%d (replace with your carrier)", sim.host, sim.port)
        traffic = TrafficLog(cfg.traffic_log.path, rotate=cfg.traffic_log.rotate,
                             max_bytes=cfg.traffic_log.max_bytes, keep=cfg.traffic_log.keep)
        self.dlr = DlrNotifier()
        await self.dlr.start()
        if self.mailer:
            await self.mailer.start()
        self.router = Router(build_routes(cfg), self.links,
                             circuit_failures=cfg.routing.circuit_failures,
                             circuit_cooldown=cfg.routing.circuit_cooldown,
                             link_rates={c.name: c.max_messages for _, c in self._link_specs})
        incoming = Path(cfg.spool.dir if cfg.spool else "var") / "incoming"
        self.inbox = Inbox(cfg.inbound, store=self.store, ids=self.ids, node=self.node,
                           node_id=cfg.node.id, dialogs=self.dialogs,
                           targets=Targets(cfg.inbound, submit=self.submit, mailer=self.mailer,
                                           incoming=incoming, spool=self.spool,
                                           tables={s.name: s for s in self.sql},
                                           account_delivery=self.smpp.deliver_mo
                                           if self.smpp else None))
        self.dispatcher = Dispatcher(
            inbox=self.inbox.on_mo, store=self.store, router=self.router, links=self.links, node=self.node,
            messages=cfg.messages, numbers=cfg.numbers, retry=cfg.retry,
            metrics=self.metrics, traffic=traffic, memory_limit=cfg.queue.memory_limit,
            listeners=[self.dlr, self.accounts, *([self.mailer] if self.mailer else []), *self.sql,
                       *([self.tcp.watch] if self.tcp else []),
                       *([self.smpp] if self.smpp else [])],
            account_rates={a.name: a.rate for a in cfg.accounts},
            state_listeners=[*([self.mailer.link_alarms()] if self.mailer else []),
                             *([self.tcp.watch.on_link_state] if self.tcp else [])])
        for cls, link_config in self._link_specs:
            self.links[link_config.name] = cls(link_config, self.dispatcher)
        self.metrics.watch_links(lambda: [link.describe() for link in self.links.values()])
        exclusive = [c.name for _, c in self._link_specs if c.exclusive] if cfg.cluster else []
        for link in self.links.values():
            if link.name not in exclusive:  # the cluster starts those on the node holding them
                await link.start()
        if cfg.cluster:
            self.cluster = Cluster(
                cfg.cluster, node=self.node, version=__version__, dispatcher=self.dispatcher,
                links=self.links, exclusive=exclusive,
                dsn=make_url(cfg.store.url).set(drivername="postgresql")
                .render_as_string(hide_password=False))
            await self.cluster.join()
        await self.dispatcher.start()
        if self.cluster:
            await self.cluster.start()
        self._accepting = True
        if self.oncall:  # before the inbox, which asks it first about every MO (acks)
            await self.oncall.start(self.store, self.node)
            self.inbox.claimers.append(self.oncall.claim)
        await self.inbox.start()
        await self._start_http()
        if self.tcp:
            await self.tcp.start(reader=MessageReader(self.store, self.dispatcher,
                                                      cfg.numbers.default_region),
                                 store=self.store, links=self.links, view=self.links_view,
                                 metrics=self.metrics, suspend=self.suspend_link)
        if self.smtp:
            await self.smtp.start()
        if self.smpp:
            await self.smpp.start(self.store)
        if self.spool:
            await self.spool.start()
        for source in self.sql:
            await source.start()
        log.info("omnigate %s node %s ready: %d links, store %s", __version__, self.node,
                 len(self.links), self.store.engine.url.render_as_string(hide_password=True))

    async def _start_http(self) -> None:
        cfg = self.config
        assert self.store and self.dispatcher
        app = build_app(config=cfg.http, accounts=self.accounts.configs(), submit=self.submit,
                        reader=MessageReader(self.store, self.dispatcher,
                                             cfg.numbers.default_region),
                        links=self.links_view, health=self.health, metrics=self.metrics,
                        version=__version__, cluster=self.cluster.view if self.cluster else None,
                        hooks=self.links)
        auth: Authenticator = app[AUTHENTICATOR]
        self.accounts.listeners.append(auth.reload)  # API keys made or revoked, new accounts
        add_admin_routes(app, self.accounts, open=auth.open)
        if self.oncall:
            add_oncall_routes(app, self.oncall)
        if cfg.web:
            add_web(app, cfg.web, submit=self.submit, store=self.store,
                    reader=MessageReader(self.store, self.dispatcher, cfg.numbers.default_region),
                    accounts=self.accounts, links=self.links_view, suspend=self.suspend_link,
                    cluster=self.cluster.view if self.cluster else None)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = split_hostport(cfg.http.listen)
        site = web.TCPSite(self._runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.http_port = sockets[0].getsockname()[1] if sockets else port
        log.info("HTTP API on http://%s:%d/", host, self.http_port)

    async def stop(self, grace: float = 10.0) -> None:
        """Graceful stop; whatever does not finish within `grace` is cut off."""
        self._accepting = False
        if self.tcp:
            await self.tcp.stop(grace=min(grace, 5.0))
        if self.smtp:
            await self.smtp.stop(grace=min(grace, 5.0))
        if self.smpp:
            await self.smpp.stop(grace=min(grace, 5.0))
        if self.spool:
            await self.spool.stop(grace=min(grace, 5.0))
        for source in self.sql:
            await source.stop(grace=min(grace, 5.0))
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if self.dispatcher:
            self.dispatcher.close()
        if self.links:
            stops = [asyncio.wait_for(link.stop(finish=True), grace)
                     for link in self.links.values()]
            results = await asyncio.gather(*stops, return_exceptions=True)
            for link, result in zip(self.links.values(), results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("link %s did not stop within %.0fs (%s); terminating",
                                link.name, grace, type(result).__name__)
                    link.terminate()
        if self.dispatcher:
            await self.dispatcher.drain_reports(stop=True)
            self.dispatcher.traffic.close()
        if self.inbox:
            await self.inbox.stop(grace=min(grace, 5.0))
        if self.oncall:
            await self.oncall.stop()
        if self.cluster:
            await self.cluster.stop()
            self.cluster = None
        if self.dlr:
            await self.dlr.stop()
        for source in self.sql:  # after the links: the last results are written back too
            await source.close(grace=min(grace, 5.0))
        if self.smpp:  # likewise the last receipts for SMPP clients
            await self.smpp.close()
        if self.mailer:
            await self.mailer.stop(grace=min(grace, 5.0))
        for sim in self.simulators:
            await sim.stop()
        await self.accounts.close()
        if self.store:
            await self.store.close()
            self.store = None

    # -- the one submit path ------------------------------------------------

    async def submit(self, request: SubmitRequest) -> list[Accepted]:
        """Check, store (group commit) and queue; returns only after the commit."""
        if not self._accepting or self.store is None or self.dispatcher is None:
            raise SubmitError("service", "omnigate is not accepting messages (starting or stopping)",
                              kind="unavailable")
        assert self.router is not None
        if self.oncall and self.oncall.wants(request):  # schedule:NAME, resolved now
            return await self.oncall.submit(request)
        if request.client_ref and not request.client_ref_new:
            existing = await self.store.find_client_keys(
                client_keys(request, max(1, len(request.to))))
            if existing:
                return [Accepted(r.id, r.recipient, Status(r.status), r.parts) for r in existing]
        profile = charge = None
        try:
            if self.accounts.profiles:  # who, as whom, how much: accounts/policy.py
                request, profile = self.accounts.admit(request)
            if self.dialogs.wants(request):  # a sender per conversation: routing/dialog.py
                request = self.dialogs.assign(request, recipients(request, self.config.numbers))
            prepared = prepare(request, numbers=self.config.numbers,
                               messages=self.config.messages, router=self.router,
                               ids=self.ids, node=self.node)
            if profile is not None:
                charge = self.accounts.bill(profile, prepared.messages, prepared.rows)
        except SubmitError:
            self.metrics.child(self.metrics.rejected, request.origin.value).inc()
            raise
        try:
            await self.store.writer.commit(prepared.rows)
        except (StoreUnavailable, ConstraintError) as exc:
            if profile is not None and charge is not None:
                self.accounts.release(profile, charge)  # not stored: not used
            if isinstance(exc, ConstraintError):
                if not request.client_ref:
                    raise
                # The same client_ref raced us in another request: answer as it was stored.
                existing = await self.store.find_client_keys(client_keys(request, len(request.to)))
                return [Accepted(r.id, r.recipient, Status(r.status), r.parts) for r in existing]
            raise SubmitError("store", f"{exc}; nothing was stored, try again",
                              kind="unavailable") from None
        self.dispatcher.add(prepared.messages)
        self.metrics.child(self.metrics.accepted, request.origin.value).inc(
            len(prepared.messages))
        return [Accepted(m.id, m.recipient, Status.QUEUED, m.parts) for m in prepared.messages]

    # -- views --------------------------------------------------------------

    def suspend_link(self, name: str, suspended: bool) -> None:
        """Take a link out of rotation (it stays connected) or put it back; KeyError if unknown."""
        if self.router is None:
            raise KeyError(name)
        self.router.suspend(name, suspended)
        if self.dispatcher:
            self.dispatcher.schedule_pump()

    def links_view(self) -> list[dict[str, Any]]:
        router = self.router
        return [{**link.describe(), **(router.describe(link.name) if router else {})}
                for link in self.links.values()]

    def health(self) -> dict[str, Any]:
        up = [n for n, link in self.links.items() if link.state is LinkState.UP]
        return {"status": "ok" if self._accepting else "stopping", "node": self.node,
                "version": __version__, "uptime": round(time.time() - self._started_at, 1),
                "links_up": up, "links": len(self.links),
                "queued": self.dispatcher.depth if self.dispatcher else 0}
