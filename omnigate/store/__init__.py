"""The store: the one truth for every message and status (SQLite or PostgreSQL)."""

from omnigate.store.db import Store

__all__ = ["Store"]
