"""HTTP carrier links: one generic client, providers as profiles, callbacks as hooks."""

from .link import HttpLink

__all__ = ["HttpLink"]
