"""Two-way dialog: a sender number per conversation, so a reply names the message it answers.

A phone that got SMS from two people through omnigate answers both to "the
company number", and "last sender" can only guess. With a pool of long numbers
(the company number plus suffix digits), each outbound message to a phone goes
from the pool number that phone has gone longest without hearing from; the
phone's reply then arrives at that number, and the newest message sent to the
phone from it is the one answered.

The choice is in memory (lost on restart, then round robin); the answer is read
from the store, so a reply is matched correctly as long as the phone got the
messages from different numbers.
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict
from collections.abc import Iterable

from omnigate.model import SubmitRequest

_PHONES_KEPT = 100_000


class Dialogs:
    def __init__(self, pool: Iterable[str], origins: Iterable[str]) -> None:
        self.pool = tuple(n.lstrip("+") for n in pool)
        self.origins = frozenset(origins)
        self._used: OrderedDict[str, dict[str, int]] = OrderedDict()  # phone -> number -> tick
        self._tick = itertools.count(1)
        self._turn = itertools.cycle(self.pool)

    def __contains__(self, number: str) -> bool:
        return number.lstrip("+") in self.pool

    def wants(self, request: SubmitRequest) -> bool:
        """Does this request get a pool sender (it names none, its origin takes part)?"""
        return bool(self.pool) and not request.sender and request.origin.value in self.origins

    def assign(self, request: SubmitRequest, phones: list[str]) -> SubmitRequest:
        """The request with the pool number these phones heard from longest ago."""
        used = [self._used.get(p, {}) for p in phones]
        # the number these phones heard from longest ago (never = 0); ties in turn
        start = next(self._turn)
        order = self.pool[self.pool.index(start):] + self.pool[:self.pool.index(start)]
        number = min(order, key=lambda n: max((u.get(n, 0) for u in used), default=0))
        tick = next(self._tick)
        for phone in phones:
            self._used.setdefault(phone, {})[number] = tick
            self._used.move_to_end(phone)
        while len(self._used) > _PHONES_KEPT:
            self._used.popitem(last=False)
        out = copy.copy(request)
        out.sender = number
        return out
