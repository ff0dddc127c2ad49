"""CIMD2 client link: `codec` (packets), `session` (sans-I/O state machine), `link` (asyncio)."""

from omnigate.carriers.cimd2.link import Cimd2Config, Cimd2Link

__all__ = ["Cimd2Config", "Cimd2Link"]
