"""GSM modem link (AT commands, PDU mode): `codes` (error and status tables), `session`
(the sans-I/O AT dialogue), `link` (serial port, RFC 2217 or raw TCP)."""

from omnigate.carriers.atmodem.link import ModemConfig, ModemLink

__all__ = ["ModemConfig", "ModemLink"]
