"""The link contract: all the dispatcher knows of a carrier connection.

A link MUST:
 1. `submit(part)` never blocks and never raises for carrier trouble; it is
    called only while `capacity() > 0`. The parts of one message are handed
    together (they must share a link), so a link may be given up to one
    message's parts beyond its capacity and must queue them.
 2. Report each submitted part exactly once: `on_sent(part, carrier_ref)` when
    the carrier took it, or `on_failed(part, kind, reason)`.
 3. On connection loss, fail everything it holds (queued or in the window)
    as `FailureKind.TEMPORARY`, so the core can send it elsewhere.
 4. Report MO (`on_mo`) and delivery reports (`on_report`) as they arrive,
    and every change of `state` through `on_state`.
 5. `stop(finish=True)` stops taking parts, waits for the window to drain,
    unbinds and closes; `terminate()` closes at once and never waits. Both
    report what is still held as temporary failures (rule 3).
A link SHOULD keep `capacity()` honest (window room and rate), so the router
can balance by it, and log through `LinkLog` so every line names the link.
"""

from __future__ import annotations

import abc
import enum
import logging
from collections.abc import MutableMapping
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from omnigate.model import DeliveryReport, FailureKind, Inbound, Part


class LinkState(enum.StrEnum):
    """Where a link is; only UP takes parts."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"  # lost or refused; reconnecting with backoff


class LinkEvents(Protocol):
    """Callbacks a link is built with; cheap and synchronous, called on the loop."""

    def on_sent(self, part: Part, carrier_ref: str) -> None: ...
    def on_failed(self, part: Part, kind: FailureKind, reason: str) -> None: ...
    def on_mo(self, inbound: Inbound) -> None: ...
    def on_report(self, report: DeliveryReport) -> None: ...
    def on_state(self, link: Link, state: LinkState) -> None: ...


class LinkConfig(BaseModel):
    """Fields every link type has; a carrier module extends it with its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str
    hosts: list[str] = Field(default_factory=list, description="host:port, tried in order")
    max_rate: float = Field(0, ge=0, description="parts per second; 0 = unlimited")
    max_messages: float = Field(0, ge=0, description="messages per second; 0 = unlimited")
    exclusive: bool = Field(False, description="in a cluster, run by one node at a time "
                                               "(an account that allows a single bind)")
    connect_timeout: float = Field(10.0, gt=0)
    reconnect_min: float = Field(1.0, gt=0, description="first reconnect delay, seconds")
    reconnect_max: float = Field(60.0, gt=0, description="reconnect delay cap, seconds")


class LinkLog(logging.LoggerAdapter):
    """Prefixes every line with the link's name, as `SMPP[smsc1]: ...`."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"{self.extra['prefix']}: {msg}", kwargs


class Link(abc.ABC):
    """One carrier connection. Subclasses set `config_model` and `protocol`."""

    config_model: ClassVar[type[LinkConfig]] = LinkConfig
    protocol: ClassVar[str] = "link"

    def __init__(self, config: LinkConfig, events: LinkEvents) -> None:
        if not isinstance(config, self.config_model):  # a bare LinkConfig: check its type's fields
            config = self.config_model.model_validate(config.model_dump())
        self.config = config
        self.name = config.name
        self.events = events
        self.log = LinkLog(logging.getLogger(f"omnigate.link.{config.name}"),
                           {"prefix": f"{self.protocol.upper()}[{config.name}]"})
        self._state = LinkState.STOPPED

    @property
    def state(self) -> LinkState:
        return self._state

    def set_state(self, state: LinkState) -> None:
        """Set state first, then tell the core, so it never hands us parts while down."""
        if state is not self._state:
            self._state = state
            self.events.on_state(self, state)

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin connecting in the background; return promptly."""

    @abc.abstractmethod
    def submit(self, part: Part) -> None:
        """Take one part for sending (contract rule 1)."""

    @abc.abstractmethod
    def capacity(self) -> int:
        """How many more parts this link takes right now (0 while not UP)."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Parts held: queued inside the link or awaiting the carrier's answer."""

    @abc.abstractmethod
    async def stop(self, finish: bool = True) -> None:
        """Graceful stop (contract rule 5)."""

    @abc.abstractmethod
    def terminate(self) -> None:
        """Immediate stop; never waits."""

    def describe(self) -> dict[str, Any]:
        """What `GET /api/v1/links` shows; links add their own fields."""
        return {"name": self.name, "type": self.protocol, "state": self.state.value,
                "in_flight": self.in_flight, "capacity": self.capacity()}
