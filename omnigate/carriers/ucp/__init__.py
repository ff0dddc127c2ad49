"""UCP/EMI 4.x client link: `codec` (frames, operation table), `session` (sans-I/O), `link`."""

from omnigate.carriers.ucp.link import UcpConfig, UcpLink

__all__ = ["UcpConfig", "UcpLink"]
