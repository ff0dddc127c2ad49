"""Prometheus metrics of one gateway (own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Accept-to-submit latency spans sub-millisecond (idle) to minutes (retries).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                    30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.accepted = Counter("omnigate_messages_accepted", "Messages accepted, by origin",
                                ["origin"], registry=r)
        self.rejected = Counter("omnigate_messages_rejected", "Submissions refused, by origin",
                                ["origin"], registry=r)
        self.sent = Counter("omnigate_parts_sent", "Parts taken by a carrier, by link",
                            ["link"], registry=r)
        self.failed = Counter("omnigate_parts_failed", "Parts refused by a carrier, by link and kind",
                              ["link", "kind"], registry=r)
        self.delivered = Counter("omnigate_reports", "Delivery reports, by link and status",
                                 ["link", "status"], registry=r)
        self.inbound = Counter("omnigate_mo_received", "MO messages received, by link",
                               ["link"], registry=r)
        self.latency = Histogram("omnigate_accept_to_submit_seconds",
                                 "From commit of a message to the carrier taking its last part",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("omnigate_queue_depth", "Messages queued in this node, not yet sent",
                                 registry=r)
        self.link_up = Gauge("omnigate_link_up", "1 while a link is up", ["link"], registry=r)

    def child(self, metric: Any, *labels: str) -> Any:
        """A labelled child, looked up once: `labels()` costs a lock and a tuple per call,
        and the hot path increments these per message."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth at scrape time instead of updating it per message."""
        self.queue_depth.set_function(depth)

    def watch_links(self, describe: Callable[[], Iterable[dict[str, Any]]]) -> None:
        """Read what links measure themselves (a modem's signal) from `describe()` at
        scrape time."""
        self.registry.register(_LinkReadings(describe))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LinkReadings(Collector):
    """`omnigate_link_signal_dbm`: received signal of the links that report one (+CSQ)."""

    def __init__(self, links: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.links = links  # not `describe`: the registry calls a collector's describe()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        signal = GaugeMetricFamily("omnigate_link_signal_dbm",
                                   "Received signal strength, dBm, by link (GSM modems)",
                                   labels=["link"])
        for d in self.links():
            if d.get("signal_dbm") is not None:
                signal.add_metric([d["name"]], d["signal_dbm"])
        yield signal
