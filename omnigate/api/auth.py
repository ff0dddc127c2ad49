"""Who may call the HTTP API: client networks, accounts, and their secrets.

Secrets are stored as scrypt hashes (RFC 7914) in the config, made by
`omnigate hash-password` (`hash_secret`). One scrypt costs tens of
milliseconds and 16 MiB, far beyond the hot path's budget, so:

- a successful verification is remembered in a bounded in-memory cache keyed
  by HMAC-SHA256(process-random key, credential): the cache holds no
  plaintext and no reusable hash, and dies with the process;
- scrypt runs in a worker thread (hashlib releases the GIL), at most
  `_MAX_CONCURRENT_SCRYPT` at once, and concurrent requests carrying the same
  not-yet-cached credential share one verification;
- the client network is checked before any credential, so only allowed
  networks can make us spend scrypt time.

Failures raise `SubmitError` with kind ``forbidden`` (403: network) or
``auth`` (401: credentials); the HTTP layer renders them. No secret ever
reaches a log line or an error text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from omnigate.accounts.secrets import check_other_hash, is_other_hash, verify_other
from omnigate.config import AccountConfig
from omnigate.model import SubmitError

# scrypt parameters of new hashes: N=2**14, r=8, p=1 is the interactive-login
# cost of RFC 7914 §2 and the Python docs; memory = 128 * r * N = 16 MiB.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# Refuse hashes whose parameters would need more than this (a hand-edited
# config must not make one login eat the machine); 4x today's cost.
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_MAX_CONCURRENT_SCRYPT = 2
# Enough for every client of a large installation; eviction only means one
# more scrypt for the evicted credential.
CACHE_SIZE = 4096
# Client addresses remembered with their allow/deny answer (cheap to recompute).
_ADDRESS_CACHE_SIZE = 65536


# -- hashes -------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    """`scrypt$16384$8$1$<salt b64>$<hash b64>` for a password or API key."""
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=_HASH_BYTES)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


@dataclass(frozen=True, slots=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _parse_hash(encoded: str) -> _Hash:
    fields = encoded.split("$")
    if len(fields) != 6 or fields[0] != "scrypt":
        raise ValueError("expected scrypt$N$r$p$salt$hash")
    try:
        n, r, p = int(fields[1]), int(fields[2]), int(fields[3])
        salt = base64.b64decode(fields[4], validate=True)
        digest = base64.b64decode(fields[5], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("malformed scrypt parameters, salt or hash") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or len(digest) < 16:
        raise ValueError("scrypt parameters out of range")
    if 128 * r * n > _SCRYPT_MAXMEM:
        raise ValueError(f"scrypt parameters need more than {_SCRYPT_MAXMEM} bytes")
    return _Hash(n, r, p, salt, digest)


def check_hash(encoded: str) -> None:
    """Raise ValueError saying what is wrong with a stored hash (for check-config)."""
    if is_other_hash(encoded):
        check_other_hash(encoded)
        return
    _parse_hash(encoded)


def verify_secret(secret: str, encoded: str) -> bool:
    """True when `secret` matches `encoded` (from `hash_secret`, or argon2 and generated
    API keys from `accounts/secrets.py`); a malformed hash is False."""
    if is_other_hash(encoded):
        return verify_other(secret, encoded)
    try:
        h = _parse_hash(encoded)
    except ValueError:
        return False
    digest = hashlib.scrypt(secret.encode(), salt=h.salt, n=h.n, r=h.r, p=h.p,
                            maxmem=_SCRYPT_MAXMEM + 1024 * 1024, dklen=len(h.digest))
    return hmac.compare_digest(digest, h.digest)


class VerifiedCache:
    """Bounded memory of verified credentials; keys are HMACs, never secrets.

    The HMAC key is random per process, so a key seen in a memory dump says
    nothing about the secret without that key, and nothing survives a restart.
    """

    def __init__(self, maxsize: int = CACHE_SIZE) -> None:
        self.maxsize = maxsize
        # keyed once; copying the keyed state costs half of hmac.digest() per call
        self._hmac = hmac.new(os.urandom(32), digestmod=hashlib.sha256)
        self._entries: dict[bytes, str] = {}

    def key(self, kind: str, account: str, secret: str) -> bytes:
        """HMAC-SHA256 of the credential; the kind keeps a password and an API key apart."""
        mac = self._hmac.copy()
        mac.update(f"{kind}\0{account}\0{secret}".encode())
        return mac.digest()

    def get(self, key: bytes) -> str | None:
        return self._entries.get(key)

    def put(self, key: bytes, account: str) -> None:
        entries = self._entries
        if key not in entries and len(entries) >= self.maxsize:
            del entries[next(iter(entries))]  # oldest first
        entries[key] = account

    def __len__(self) -> int:
        return len(self._entries)


# -- client networks ----------------------------------------------------------


class Allowlist:
    """Client networks (IPv4 and IPv6 CIDRs) with a cached answer per address."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._seen: dict[str | None, bool] = {}

    def __contains__(self, address: str | None) -> bool:
        seen = self._seen.get(address)
        if seen is None:
            seen = self._check(address)
            if len(self._seen) >= _ADDRESS_CACHE_SIZE:
                self._seen.clear()
            self._seen[address] = seen
        return seen

    def _check(self, address: str | None) -> bool:
        if not address:
            return False  # no peer address (unix socket): nothing to check against
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        candidates = [ip]
        if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d on dual-stack
            candidates.append(ip.ipv4_mapped)
        return any(c in net for c in candidates for net in self._networks
                   if c.version == net.version)


# -- credentials from an HTTP request -----------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    api_key: str | None = None


_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


async def credentials(request: web.Request) -> Credentials | None:
    """The credentials a request carries, in order: Authorization, X-API-Key, params.

    Params are Kannel's `username`/`password`, in the query or a form body.
    """
    headers = request.headers
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True)
            except ValueError:  # binascii.Error, or non-ASCII in the header
                raise _unauthorized("malformed Basic credentials") from None
            try:
                text = decoded.decode()
            except UnicodeDecodeError:
                text = decoded.decode("latin-1")  # RFC 7617 §2.1: charset unspecified by default
            username, sep, password = text.partition(":")
            if not sep:
                raise _unauthorized("malformed Basic credentials")
            return Credentials(username=username, password=password)
        if scheme == "bearer" and value:
            return Credentials(api_key=value)
        raise _unauthorized("unsupported Authorization scheme")
    api_key = headers.get("X-API-Key")
    if api_key:
        return Credentials(api_key=api_key.strip())
    query = request.query
    username = query.get("username")
    password = query.get("password")
    if username is None and request.method == "POST" and request.content_type in _FORM_TYPES:
        try:
            form = await request.post()
        except ValueError:  # undecodable bytes, broken multipart
            raise SubmitError("body", "malformed form data") from None
        username = _str_or_none(form.get("username"))
        password = _str_or_none(form.get("password"))
    if username is None and password is None:
        return None
    return Credentials(username=username or "", password=password or "")


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _unauthorized(reason: str) -> SubmitError:
    return SubmitError("auth", reason, "auth")


# -- the authenticator --------------------------------------------------------


class Authenticator:
    """Decides who a request is: network first, then (if accounts exist) credentials."""

    def __init__(self, allow: Iterable[str], accounts: Iterable[AccountConfig],
                 cache: VerifiedCache | None = None) -> None:
        self.allow = Allowlist(allow)
        self.accounts = {a.name: a for a in accounts}
        self.open = not self.accounts  # no accounts: allowed networks need no credentials
        self._account_allow = {a.name: Allowlist(a.allow) for a in self.accounts.values()
                               if a.allow}
        self._api_keys = [(a.name, h) for a in self.accounts.values() for h in a.api_key_hash]
        self.cache = cache if cache is not None else VerifiedCache()
        self._gate = asyncio.Semaphore(_MAX_CONCURRENT_SCRYPT)
        self._pending: dict[bytes, asyncio.Task[str | None]] = {}
        self._dummy_hash: str | None = None
        self.scrypt_runs = 0  # for tests and curiosity: how often the cache missed

    def reload(self, accounts: Iterable[AccountConfig]) -> None:
        """Take the accounts as the store now has them (an API key made or revoked, a new
        password); remembered verifications are dropped. Open or not stays as built."""
        self.accounts = {a.name: a for a in accounts}
        self._account_allow = {a.name: Allowlist(a.allow) for a in self.accounts.values()
                               if a.allow}
        self._api_keys = [(a.name, h) for a in self.accounts.values() for h in a.api_key_hash]
        self.cache = VerifiedCache(self.cache.maxsize)

    def check_address(self, address: str | None) -> None:
        if address not in self.allow:
            raise SubmitError("forbidden", f"client address {address} is not allowed",
                              "forbidden")

    async def authenticate(self, creds: Credentials | None, address: str | None) -> str:
        """The account name these credentials prove; raises SubmitError (401/403)."""
        if creds is None:
            raise _unauthorized("credentials required")
        if creds.api_key is not None:
            key = self.cache.key("key", "", creds.api_key)
            name = self.cache.get(key)
            if name is None:
                name = await self._verify(key, lambda: self._match_api_key(creds.api_key))
            if name is None:
                raise _unauthorized("unknown API key")
        else:
            username = creds.username or ""
            key = self.cache.key("password", username, creds.password or "")
            name = self.cache.get(key)
            if name is None:
                name = await self._verify(
                    key, lambda: self._match_password(username, creds.password or ""))
            if name is None:
                raise _unauthorized("wrong username or password")
        allow = self._account_allow.get(name)
        if allow is not None and address not in allow:
            raise SubmitError("forbidden",
                              f"client address {address} is not allowed for account {name}",
                              "forbidden")
        return name

    async def _verify(self, key: bytes, job: Callable[[], str | None]) -> str | None:
        """Run `job` (scrypt) in a thread, once per key however many requests wait on it."""
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._run(key, job))
            self._pending[key] = task
            task.add_done_callback(lambda _t: self._pending.pop(key, None))
        # shield: a cancelled request must not cancel the others' verification
        return await asyncio.shield(task)

    async def _run(self, key: bytes, job: Callable[[], str | None]) -> str | None:
        async with self._gate:
            self.scrypt_runs += 1
            name = await asyncio.get_running_loop().run_in_executor(None, job)
        if name is not None:
            self.cache.put(key, name)
        return name

    def _match_password(self, username: str, password: str) -> str | None:
        account = self.accounts.get(username)
        if account is None or account.password_hash is None:
            # Spend the same time as a real check, so timing does not tell
            # which account names exist.
            if self._dummy_hash is None:
                self._dummy_hash = hash_secret(os.urandom(16).hex())
            verify_secret(password, self._dummy_hash)
            return None
        return username if verify_secret(password, account.password_hash) else None

    def _match_api_key(self, api_key: str) -> str | None:
        for name, encoded in self._api_keys:
            if verify_secret(api_key, encoded):
                return name
        return None
