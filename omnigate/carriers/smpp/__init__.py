"""SMPP 3.4 client link: `codec` (PDUs), `session` (sans-I/O state machine), `link` (asyncio)."""

from omnigate.carriers.smpp.link import SmppConfig, SmppLink

__all__ = ["SmppConfig", "SmppLink"]
