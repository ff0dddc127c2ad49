"""The account book: accounts and their usage in memory, the store as the truth.

At start the config's [[accounts]] are written over their store rows (config
stays the simple way to keep a few accounts), then every account, its API keys,
this day's and month's parts (from `charges`) and prepaid balances (top-ups and
sets in `movements`, less unrefunded prepaid charges) are loaded. From then on
the hot path touches memory only: `check` and `bill` are plain function calls,
and a message's charge row rides in the message's own group commit, so the
store never disagrees with what was accepted. Check and reservation happen
without an await in between, so concurrent submits on one node never overspend
a balance.

Prepaid refunds (final statuses in [billing].refund) arrive as status changes
on the loop; a small task settles them in the store in batches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select

from omnigate.accounts import policy
from omnigate.accounts.policy import Calendar, Charge, Prices, Profile, Usage
from omnigate.accounts.secrets import new_api_key
from omnigate.config import AccountConfig, BillingConfig, validation_problems
from omnigate.model import StatusChange, SubmitError, SubmitRequest
from omnigate.routing.ratelimit import TokenBucket
from omnigate.store import Store, schema

log = logging.getLogger("omnigate.accounts")

_SETTLE_INTERVAL = 0.2  # seconds between refund batches
_SETTLE_BATCH = 500


def settings_of(config: AccountConfig) -> str:
    return json.dumps(config.model_dump(exclude={"name"}))


def account_config(name: str, settings: dict[str, Any]) -> AccountConfig:
    """Validate account settings (API input or a store row); a bad field is a 400."""
    try:
        return AccountConfig.model_validate({**settings, "name": name})
    except ValidationError as exc:
        raise SubmitError("account", "; ".join(validation_problems(exc))) from None


class AccountBook:
    def __init__(self, configs: list[AccountConfig], billing: BillingConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self._configs = configs
        self.billing = billing
        self.clock = clock
        self.calendar = Calendar(billing.timezone)
        self.prices = Prices(billing.prices, billing.default_price)
        self._refund = frozenset(billing.refund)
        self.profiles: dict[str, Profile] = {}
        self.usage: dict[str, Usage] = {}
        self.keys: dict[str, list[dict[str, Any]]] = {}  # account -> its API keys (no hashes)
        self._key_hashes: dict[str, str] = {}  # key id -> hash
        self._prepaid: frozenset[str] = frozenset()
        self._store: Store | None = None
        self._refunds: list[int] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[list[AccountConfig]], None]] = []

    @property
    def store(self) -> Store | None:
        return self._store

    # -- lifecycle ------------------------------------------------------------

    async def open(self, store: Store) -> None:
        self._store = store
        now = self.clock()
        async with store.engine.connect() as conn:
            known = set((await conn.execute(select(schema.accounts.c.name))).scalars())
        rows: dict[str, list[dict[str, Any]]] = {}
        for cfg in self._configs:
            values = {"settings": settings_of(cfg), "from_config": True, "updated_at": now}
            if cfg.name in known:
                rows.setdefault("account_settings", []).append({"b_name": cfg.name, **values})
            else:
                rows.setdefault("accounts", []).append(
                    {"name": cfg.name, "created_at": now, **values})
        if rows:
            await store.writer.commit(rows)
        await self.reload()
        self._task = asyncio.create_task(self._settle(), name="account-refunds")
        log.info("accounts: %d loaded (%d prepaid)", len(self.profiles), len(self._prepaid))

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            await self._settle_once()  # what arrived while stopping

    async def reload(self) -> None:
        """(Re)read accounts and keys from the store, and usage and balances of accounts not
        yet in memory: for those already there memory is ahead of the store (reserved,
        not yet committed), so it is kept."""
        assert self._store is not None
        day_start, month_start = self.calendar.starts(self.clock())
        day, month = self.calendar.keys(self.clock())
        async with self._store.engine.connect() as conn:
            a, k, ch, mv = (schema.accounts.c, schema.account_keys.c, schema.charges.c,
                            schema.movements.c)
            rows = (await conn.execute(select(a.name, a.settings))).all()
            keys = (await conn.execute(
                select(k.id, k.account, k.hash, k.label, k.created_at)
                .where(k.revoked_at.is_(None)))).all()
            month_parts = dict((await conn.execute(
                select(ch.account, func.sum(ch.parts)).where(ch.created_at >= month_start)
                .group_by(ch.account))).all())
            day_parts = dict((await conn.execute(
                select(ch.account, func.sum(ch.parts)).where(ch.created_at >= day_start)
                .group_by(ch.account))).all())
            charged = dict((await conn.execute(
                select(ch.account, func.sum(ch.amount))
                .where(ch.prepaid.is_(True), ch.refunded_at.is_(None))
                .group_by(ch.account))).all())
            moved = dict((await conn.execute(
                select(mv.account, func.sum(mv.amount)).group_by(mv.account))).all())
        self.keys = {}
        self._key_hashes = {}
        for key in keys:
            self.keys.setdefault(key.account, []).append(
                {"id": key.id, "label": key.label, "created_at": key.created_at})
            self._key_hashes[key.id] = key.hash
        profiles: dict[str, Profile] = {}
        usage: dict[str, Usage] = {}
        for row in rows:
            profile = Profile(account_config(row.name, json.loads(row.settings)))
            profiles[row.name] = profile
            if row.name in self.usage:
                usage[row.name] = self.usage[row.name]
                continue
            rate = profile.config.submit_rate
            usage[row.name] = Usage(
                day=day, day_parts=int(day_parts.get(row.name) or 0), month=month,
                month_parts=int(month_parts.get(row.name) or 0),
                balance=round(float(moved.get(row.name) or 0) - float(charged.get(row.name) or 0), 6),
                bucket=TokenBucket(rate, burst=max(1.0, rate)) if rate else None)
        self.profiles, self.usage = profiles, usage
        self._prepaid = frozenset(n for n, p in profiles.items() if p.prepaid)
        configs = self.configs()
        for listener in self.listeners:
            listener(configs)

    def configs(self) -> list[AccountConfig]:
        """Accounts as the authenticators know them: with their stored API keys."""
        out = []
        for name, profile in self.profiles.items():
            hashes = [self._key_hashes[k["id"]] for k in self.keys.get(name, ())]
            cfg = profile.config
            out.append(cfg.model_copy(update={"api_key_hash": [*cfg.api_key_hash, *hashes]})
                       if hashes else cfg)
        return out

    # -- the hot path ---------------------------------------------------------

    def resolve(self, request: SubmitRequest) -> Profile | None:
        """The account a request is charged to: its name, or (mail ingresses) the first
        account whose `mail_senders` patterns match the e-mail sender."""
        name = request.account
        if name is None:
            return None
        profile = self.profiles.get(name)
        if profile is None and "@" in name:
            for candidate in self.profiles.values():
                if candidate.mail_senders and candidate.sends_mail_as(name):
                    return candidate
        return profile

    def admit(self, request: SubmitRequest) -> tuple[SubmitRequest, Profile | None]:
        profile = self.resolve(request)
        if profile is None:
            return request, None
        return policy.admit(profile, request), profile

    def bill(self, profile: Profile, messages: list[Any], rows: dict[str, list[dict[str, Any]]]
             ) -> Charge:
        """Check quotas, rate and balance for the prepared messages, reserve, and add
        their charge rows to the commit. Raises a refusal, changing nothing."""
        now = self.clock()
        usage = self.usage[profile.name]
        charge = policy.charge(profile, usage, [(m.recipient, m.parts) for m in messages],
                               self.prices, now, self.calendar.keys(now))
        policy.reserve(profile, usage, charge)
        cfg = profile.config
        rows["charges"] = [
            {"message_id": m.id, "account": profile.name, "created_at": now, "parts": parts,
             "amount": amount, "prepaid": profile.prepaid, "company": cfg.company,
             "department": cfg.department, "cost_centre": cfg.cost_centre,
             "project": cfg.project, "refunded_at": None}
            for m, (parts, amount) in zip(messages, charge.each, strict=True)]
        return charge

    def release(self, profile: Profile, charge: Charge) -> None:
        usage = self.usage.get(profile.name)
        if usage is not None:
            policy.release(profile, usage, charge)

    # -- refunds --------------------------------------------------------------

    def on_status(self, change: StatusChange) -> None:
        if change.status in self._refund and change.message.account in self._prepaid:
            self._refunds.append(change.message.id)
            self._wake.set()

    async def _settle(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._settle_once()
            except Exception:
                log.exception("accounts: refunds not settled; retrying")
            await asyncio.sleep(_SETTLE_INTERVAL)

    async def _settle_once(self) -> None:
        if not self._refunds or self._store is None:
            return
        ids, self._refunds = self._refunds[:_SETTLE_BATCH], self._refunds[_SETTLE_BATCH:]
        if self._refunds:
            self._wake.set()
        ch = schema.charges.c
        now = self.clock()
        try:
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(
                    select(ch.message_id, ch.account, ch.amount)
                    .where(ch.message_id.in_(ids), ch.prepaid.is_(True),
                           ch.refunded_at.is_(None)))).all()
            if rows:
                await self._store.writer.commit({"charge_refunded": [
                    {"b_message_id": r.message_id, "refunded_at": now} for r in rows]})
        except Exception:
            self._refunds[:0] = ids
            raise
        for row in rows:
            usage = self.usage.get(row.account)
            if usage is not None:
                usage.balance = round(usage.balance + row.amount, 6)

    # -- administration -------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        profile = self.profiles.get(name)
        if profile is None:
            raise SubmitError("name", f"no account {name}", "not_found")
        usage = self.usage[name]
        now = self.clock()
        policy.roll(usage, self.calendar.keys(now))
        data = profile.config.model_dump(exclude={"password_hash", "api_key_hash"})
        data.update({"password": profile.config.password_hash is not None,
                     "api_keys": self.keys.get(name, []) + [
                         {"id": "config", "label": f"{len(profile.config.api_key_hash)} from config"}
                     ] * bool(profile.config.api_key_hash),
                     "usage": {"day": usage.day, "day_parts": usage.day_parts,
                               "month": usage.month, "month_parts": usage.month_parts},
                     "balance": usage.balance if profile.prepaid else None,
                     "currency": self.billing.currency})
        return data

    async def put(self, name: str, settings: dict[str, Any], *, create: bool) -> None:
        """Create an account or change some of its settings (PATCH semantics)."""
        assert self._store is not None
        existing = self.profiles.get(name)
        if create and existing is not None:
            raise SubmitError("name", f"account {name} exists", "conflict")
        if not create and existing is None:
            raise SubmitError("name", f"no account {name}", "not_found")
        base = existing.config.model_dump(exclude={"name"}) if existing else {}
        cfg = account_config(name, {**base, **settings})
        now = self.clock()
        values = {"settings": settings_of(cfg), "from_config": False, "updated_at": now}
        await self._store.writer.commit(
            {"account_settings": [{"b_name": name, **values}]} if existing else
            {"accounts": [{"name": name, "created_at": now, **values}]})
        self._swap(cfg)
        log.info("accounts: %s %s", "created" if create else "changed", name)

    def _swap(self, cfg: AccountConfig) -> None:
        """Replace a profile in memory, keeping its usage and balance."""
        profile = Profile(cfg)
        self.profiles = {**self.profiles, cfg.name: profile}
        usage = self.usage.setdefault(cfg.name, Usage())
        rate = cfg.submit_rate
        usage.bucket = TokenBucket(rate, burst=max(1.0, rate)) if rate else None
        self._prepaid = frozenset(n for n, p in self.profiles.items() if p.prepaid)
        configs = self.configs()
        for listener in self.listeners:
            listener(configs)

    async def remove(self, name: str) -> None:
        """Delete an account and its keys; its charges stay for the reports."""
        assert self._store is not None
        if name not in self.profiles:
            raise SubmitError("name", f"no account {name}", "not_found")
        await self._store.writer.commit({"account_removed": [{"b_name": name}],
                                         "account_keys_removed": [{"b_name": name}]})
        await self.reload()
        log.info("accounts: removed %s", name)

    async def add_key(self, name: str, label: str | None) -> dict[str, Any]:
        """A new API key; the key itself is in this answer and nowhere else."""
        assert self._store is not None
        if name not in self.profiles:
            raise SubmitError("name", f"no account {name}", "not_found")
        key, key_id, hashed = new_api_key()
        now = self.clock()
        await self._store.writer.commit({"account_keys": [
            {"id": key_id, "account": name, "hash": hashed, "label": label, "created_at": now,
             "revoked_at": None}]})
        await self.reload()
        log.info("accounts: API key %s made for %s", key_id, name)
        return {"id": key_id, "key": key, "label": label, "created_at": now}

    async def revoke_key(self, name: str, key_id: str) -> None:
        assert self._store is not None
        if not any(k["id"] == key_id for k in self.keys.get(name, ())):
            raise SubmitError("key", f"no active key {key_id} of account {name}", "not_found")
        await self._store.writer.commit({"key_revoked": [{"b_id": key_id,
                                                          "revoked_at": self.clock()}]})
        await self.reload()
        log.info("accounts: API key %s of %s revoked", key_id, name)

    async def move(self, name: str, amount: float, kind: str, note: str | None) -> float:
        """Top up (amount added) or set (amount is the new balance); the new balance."""
        assert self._store is not None
        profile = self.profiles.get(name)
        if profile is None:
            raise SubmitError("name", f"no account {name}", "not_found")
        if not profile.prepaid:
            raise SubmitError("billing", f"account {name} is postpaid: it has no balance")
        usage = self.usage[name]
        delta = round(amount - usage.balance if kind == "set" else amount, 6)
        await self._store.writer.commit({"movements": [
            {"account": name, "at": self.clock(), "amount": delta, "kind": kind, "note": note}]})
        usage.balance = round(usage.balance + delta, 6)
        log.info("accounts: balance of %s %s by %.2f to %.2f", name, kind, delta, usage.balance)
        return usage.balance
