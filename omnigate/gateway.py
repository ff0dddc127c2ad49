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
from typing import Any

from aiohttp import web

from omnigate import __version__, carriers
from omnigate.api.http import build_app
from omnigate.api.smtp import SmtpIngress
from omnigate.carriers.base import Link, LinkState
from omnigate.config import Config, ConfigError, SimulatorConfig, split_hostport
from omnigate.delivery.dlr_url import DlrNotifier
from omnigate.delivery.email import Mailer
from omnigate.dispatcher import Dispatcher
from omnigate.ids import IdGenerator
from omnigate.intake import client_keys, prepare
from omnigate.metrics import Metrics
from omnigate.model import Accepted, Status, SubmitError, SubmitRequest
from omnigate.routing.match import Match, TimeWindow
from omnigate.routing.outbound import Route, Router
from omnigate.sim.base import Simulator
from omnigate.sim.cimd2 import Cimd2Simulator
from omnigate.sim.smpp import SmscSimulator
from omnigate.sim.ucp import UcpSimulator
from omnigate.sms.numbers import NumberError, normalise_msisdn
from omnigate.store import Store
from omnigate.store.writer import ConstraintError, StoreUnavailable
from omnigate.trafficlog import TrafficLog

log = logging.getLogger("omnigate")


def build_simulator(config: SimulatorConfig) -> Simulator[Any, Any]:
    host, port = split_hostport(config.listen)
    common = {"host": host, "port": port, "password": config.password, "dlr": config.dlr,
              "dlr_delay": config.dlr_delay}
    if config.type == "smpp":
        return SmscSimulator(system_id=config.system_id, **common)
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
                            since: datetime | None, limit: int) -> list[dict[str, Any]]:
        if to:
            try:
                to = normalise_msisdn(to, self._region, mobile_only=False)
            except NumberError as exc:
                raise SubmitError("to", exc.reason) from None
        rows = await self._store.list_messages(status=status, to=to, since=since, limit=limit)
        return [self._overlay(r) for r in rows]


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
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        # built here so a bad [smtp] (numbers in groups, TLS files) fails before start
        self.smtp = (SmtpIngress(config.smtp, accounts=config.accounts, numbers=config.numbers,
                                 messages=config.messages, submit=self.submit)
                     if config.smtp else None)
        self.mailer = (Mailer(config.mail, sms_domain=config.smtp.domains[0] if config.smtp else None,
                              own_domains=frozenset(config.smtp.domains if config.smtp else ()))
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
        for sim in self.simulators:
            await sim.start()
            log.info("SMSC simulator on %s:%d (replace with your carrier)", sim.host, sim.port)
        traffic = TrafficLog(cfg.traffic_log.path)
        self.dlr = DlrNotifier()
        await self.dlr.start()
        if self.mailer:
            await self.mailer.start()
        self.router = Router(build_routes(cfg), self.links,
                             circuit_failures=cfg.routing.circuit_failures,
                             circuit_cooldown=cfg.routing.circuit_cooldown,
                             link_rates={c.name: c.max_messages for _, c in self._link_specs})
        self.dispatcher = Dispatcher(
            store=self.store, router=self.router, links=self.links, node=self.node,
            messages=cfg.messages, numbers=cfg.numbers, retry=cfg.retry,
            metrics=self.metrics, traffic=traffic, memory_limit=cfg.queue.memory_limit,
            listeners=[self.dlr, *([self.mailer] if self.mailer else [])],
            account_rates={a.name: a.rate for a in cfg.accounts},
            state_listeners=[self.mailer.link_alarms()] if self.mailer else [])
        for cls, link_config in self._link_specs:
            self.links[link_config.name] = cls(link_config, self.dispatcher)
        for link in self.links.values():
            await link.start()
        await self.dispatcher.start()
        self._accepting = True
        await self._start_http()
        if self.smtp:
            await self.smtp.start()
        log.info("omnigate %s node %s ready: %d links, store %s", __version__, self.node,
                 len(self.links), self.store.engine.url.render_as_string(hide_password=True))

    async def _start_http(self) -> None:
        cfg = self.config
        assert self.store and self.dispatcher
        app = build_app(config=cfg.http, accounts=cfg.accounts, submit=self.submit,
                        reader=MessageReader(self.store, self.dispatcher,
                                             cfg.numbers.default_region),
                        links=self.links_view, health=self.health, metrics=self.metrics,
                        version=__version__)
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
        if self.smtp:
            await self.smtp.stop(grace=min(grace, 5.0))
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
        if self.dlr:
            await self.dlr.stop()
        if self.mailer:
            await self.mailer.stop(grace=min(grace, 5.0))
        for sim in self.simulators:
            await sim.stop()
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
        if request.client_ref:
            existing = await self.store.find_client_keys(
                client_keys(request, max(1, len(request.to))))
            if existing:
                return [Accepted(r.id, r.recipient, Status(r.status), r.parts) for r in existing]
        try:
            prepared = prepare(request, numbers=self.config.numbers,
                               messages=self.config.messages, router=self.router,
                               ids=self.ids, node=self.node)
        except SubmitError:
            self.metrics.child(self.metrics.rejected, request.origin.value).inc()
            raise
        try:
            await self.store.writer.commit(prepared.rows)
        except StoreUnavailable as exc:
            raise SubmitError("store", f"{exc}; nothing was stored, try again",
                              kind="unavailable") from None
        except ConstraintError:
            if not request.client_ref:
                raise
            # The same client_ref raced us in another request: answer as it was stored.
            existing = await self.store.find_client_keys(client_keys(request, len(request.to)))
            return [Accepted(r.id, r.recipient, Status(r.status), r.parts) for r in existing]
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
