"""Carrier links: the registry maps a config `type` to its Link class (STYLE §1)."""

from __future__ import annotations

from pydantic import ValidationError

from omnigate.carriers.base import Link, LinkConfig
from omnigate.config import LinkEntry, validation_problems


def registry() -> dict[str, type[Link]]:
    """Link classes by config type; imported here so an unused protocol costs nothing."""
    from omnigate.carriers.atmodem import ModemLink
    from omnigate.carriers.cimd2 import Cimd2Link
    from omnigate.carriers.http import HttpLink
    from omnigate.carriers.smpp import SmppLink
    from omnigate.carriers.ucp import UcpLink

    return {"cimd2": Cimd2Link, "modem": ModemLink, "http": HttpLink, "smpp": SmppLink, "ucp": UcpLink}


def resolve(entries: list[LinkEntry]) -> tuple[list[tuple[type[Link], LinkConfig]], list[str]]:
    """Check each [[links]] entry against its type's model; problems carry their path."""
    known = registry()
    resolved: list[tuple[type[Link], LinkConfig]] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        cls = known.get(entry.type)
        if cls is None:
            problems.append(f"links[{i}].type: unknown link type {entry.type!r} "
                            f"(known: {', '.join(sorted(known))})")
            continue
        try:
            resolved.append((cls, cls.config_model.model_validate(entry.model_dump())))
        except ValidationError as exc:
            problems += validation_problems(exc, prefix=f"links[{i}]")
    return resolved, problems
