"""Logins of the web pages: random session ids in a cookie, a CSRF token per session.

Sessions live in memory: a restart logs everyone out, which costs one login and
keeps no secret on disk. The cookie is HttpOnly and SameSite=Strict; every POST
must also carry the session's CSRF token in a form field (synchroniser token),
and the login form its own token from a short-lived cookie (double submit), so
a page on another site can neither post as a logged-in person nor log them in
as someone else.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

COOKIE = "omnigate_session"
LOGIN_COOKIE = "omnigate_login"
# Enough for every person of a large installation; past it the oldest login goes.
MAX_SESSIONS = 10_000
_TOKEN_BYTES = 32


@dataclass(slots=True)
class Session:
    account: str
    admin: bool
    expires: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(_TOKEN_BYTES))


class Sessions:
    """Session id -> Session, expiring `ttl` seconds after last use."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._by_id: dict[str, Session] = {}

    def create(self, account: str, admin: bool) -> tuple[str, Session]:
        if len(self._by_id) >= MAX_SESSIONS:
            self._expire(time.monotonic())
            if len(self._by_id) >= MAX_SESSIONS:
                del self._by_id[next(iter(self._by_id))]
        sid = secrets.token_urlsafe(_TOKEN_BYTES)
        session = Session(account, admin, time.monotonic() + self.ttl)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if session.expires < now:
            del self._by_id[sid]
            return None
        session.expires = now + self.ttl
        return session

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(_TOKEN_BYTES)

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def _expire(self, now: float) -> None:
        for sid in [s for s, v in self._by_id.items() if v.expires < now]:
            del self._by_id[sid]


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))
