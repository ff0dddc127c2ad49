"""Secrets, the verified-credential cache, and client networks (omnigate.api.auth)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from omnigate.api.auth import (
    Allowlist,
    Authenticator,
    Credentials,
    VerifiedCache,
    check_hash,
    hash_secret,
    verify_secret,
)
from omnigate.config import AccountConfig
from omnigate.model import SubmitError


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return hash_secret("correct horse")  # real parameters: ~50-100 ms, once


def test_hash_format(alice_hash: str) -> None:
    scheme, n, r, p, salt, digest = alice_hash.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32
    assert "correct horse" not in alice_hash
    assert hash_secret("correct horse") != alice_hash  # fresh salt each time
    check_hash(alice_hash)


def test_verify_round_trip_and_wrong_secret(alice_hash: str) -> None:
    assert verify_secret("correct horse", alice_hash)
    assert not verify_secret("correct horse ", alice_hash)
    assert not verify_secret("", alice_hash)


def test_non_ascii_secret() -> None:
    encoded = hash_secret("lösenord€")
    assert verify_secret("lösenord€", encoded)
    assert not verify_secret("losenord€", encoded)


@pytest.mark.parametrize("encoded", [
    "", "plain", "bcrypt$x", "scrypt$16384$8$1$!!$!!",
    "scrypt$1000$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==",  # N not a power of two
    "scrypt$1048576$64$1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==",  # 8 GiB of memory: refused
])
def test_malformed_hash_is_refused(encoded: str) -> None:
    assert not verify_secret("x", encoded)
    with pytest.raises(ValueError):
        check_hash(encoded)


def test_cache_keys_hide_the_secret_and_are_per_process() -> None:
    a, b = VerifiedCache(), VerifiedCache()
    key = a.key("password", "alice", "correct horse")
    assert b"correct horse" not in key
    assert len(key) == 32
    assert key == a.key("password", "alice", "correct horse")
    assert key != b.key("password", "alice", "correct horse")  # process-random HMAC key
    assert key != a.key("key", "alice", "correct horse")
    assert key != a.key("password", "alicf", "correct horse")


def test_cache_is_bounded() -> None:
    cache = VerifiedCache(maxsize=3)
    keys = [cache.key("password", f"user{i}", "pw") for i in range(5)]
    for i, k in enumerate(keys):
        cache.put(k, f"user{i}")
    assert len(cache) == 3
    assert cache.get(keys[0]) is None and cache.get(keys[1]) is None  # oldest went first
    assert cache.get(keys[4]) == "user4"


async def test_authenticator_caches_success_and_shares_concurrent_checks(
        alice_hash: str) -> None:
    api_key = "k-123"
    auth = Authenticator(["127.0.0.0/8"], [AccountConfig(
        name="alice", password_hash=alice_hash, api_key_hash=[hash_secret(api_key)])])
    assert not auth.open
    good = Credentials(username="alice", password="correct horse")
    names = await asyncio.wait_for(
        asyncio.gather(*(auth.authenticate(good, "127.0.0.1") for _ in range(8))), 10)
    assert names == ["alice"] * 8
    assert auth.scrypt_runs == 1  # eight requests, one scrypt
    assert await auth.authenticate(good, "127.0.0.1") == "alice"
    assert auth.scrypt_runs == 1  # cached

    assert await auth.authenticate(Credentials(api_key=api_key), "127.0.0.1") == "alice"
    assert await auth.authenticate(Credentials(api_key=api_key), "127.0.0.1") == "alice"
    assert auth.scrypt_runs == 2

    with pytest.raises(SubmitError) as e:
        await auth.authenticate(Credentials(username="alice", password="wrong"), "127.0.0.1")
    assert (e.value.field, e.value.kind) == ("auth", "auth")
    with pytest.raises(SubmitError):
        await auth.authenticate(Credentials(username="nobody", password="x"), "127.0.0.1")
    with pytest.raises(SubmitError) as e:
        await auth.authenticate(None, "127.0.0.1")
    assert e.value.reason == "credentials required"


async def test_account_allow_list(alice_hash: str) -> None:
    auth = Authenticator(["0.0.0.0/0"], [AccountConfig(
        name="alice", password_hash=alice_hash, allow=["192.0.2.0/24"])])
    good = Credentials(username="alice", password="correct horse")
    assert await auth.authenticate(good, "192.0.2.7") == "alice"
    with pytest.raises(SubmitError) as e:
        await auth.authenticate(good, "198.51.100.1")
    assert e.value.kind == "forbidden"


def test_no_accounts_is_open() -> None:
    assert Authenticator(["127.0.0.0/8"], []).open


def test_allowlist_ipv4_ipv6_and_mapped() -> None:
    allow = Allowlist(["127.0.0.0/8", "::1/128", "2001:db8::/32", "10.1.2.3"])
    assert "127.0.0.1" in allow
    assert "10.1.2.3" in allow
    assert "10.1.2.4" not in allow
    assert "::1" in allow
    assert "2001:db8::42" in allow
    assert "2001:db9::1" not in allow
    assert "::ffff:127.0.0.1" in allow  # IPv4 client on a dual-stack socket
    assert "::ffff:192.0.2.1" not in allow
    assert None not in allow
    assert "not-an-address" not in allow
    assert "127.0.0.1" in allow  # answered from the cache the second time


def test_check_address_message() -> None:
    auth = Authenticator(["10.0.0.0/8"], [])
    auth.check_address("10.9.9.9")
    with pytest.raises(SubmitError) as e:
        auth.check_address("127.0.0.1")
    assert (e.value.field, e.value.reason, e.value.kind) == (
        "forbidden", "client address 127.0.0.1 is not allowed", "forbidden")
