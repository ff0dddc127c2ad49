"""Long MO messages: parts in, whole messages out (sans-I/O, time passed in).

A part belongs to a group keyed by (link, sender, recipient, reference, total):
the reference alone repeats every 256 messages (8-bit) and is only unique per
sender and recipient. Parts may arrive in any order and twice (a carrier
resending after a lost ack); a group completes when every sequence number is
there, or is given up after `wait` seconds and delivered with what arrived,
marked incomplete, so nothing received is ever dropped.

Each group gets its message id when its first part arrives, so every stored
part row names its message and a restart can rebuild unfinished groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from omnigate.model import Inbound

GroupKey = tuple[str, str, str, int, int]


@dataclass(slots=True)
class Assembled:
    """A whole (or given-up) MO message."""

    id: int
    first: Inbound  # link, sender, recipient, coding and time of the first part
    text: str
    parts: int  # received
    total: int
    complete: bool


@dataclass(slots=True)
class _Group:
    id: int
    total: int
    started: float
    parts: dict[int, Inbound] = field(default_factory=dict)


class Reassembler:
    def __init__(self, wait: float, new_id: Callable[[], int]) -> None:
        self.wait = wait
        self._new_id = new_id
        self._groups: dict[GroupKey, _Group] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, part: Inbound, now: float, id: int | None = None) -> tuple[int, Assembled | None]:
        """File one part: (its message id, the message if this part completed it).

        A single-part message is complete at once. `id` restores a part read back
        from the store under the message id it was given before a restart.
        """
        if part.concat is None or part.concat[1] <= 1:
            mid = id if id is not None else self._new_id()
            return mid, Assembled(mid, part, part.text, 1, 1, True)
        ref, total, seq = part.concat
        key = (part.link, part.sender, part.recipient, ref, total)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(id if id is not None else self._new_id(), total,
                                               now)
        group.parts.setdefault(seq, part)  # a resent part changes nothing
        if len(group.parts) < total:
            return group.id, None
        del self._groups[key]
        return group.id, self._assemble(group, complete=True)

    def expired(self, now: float) -> list[Assembled]:
        """Groups that waited too long, delivered with the parts that came."""
        out = []
        for key, group in list(self._groups.items()):
            if now - group.started >= self.wait:
                del self._groups[key]
                out.append(self._assemble(group, complete=False))
        return out

    def next_deadline(self) -> float | None:
        return min((g.started + self.wait for g in self._groups.values()), default=None)

    @staticmethod
    def _assemble(group: _Group, complete: bool) -> Assembled:
        seqs = sorted(group.parts)
        first = group.parts[seqs[0]]
        text = "".join(group.parts[s].text for s in seqs)
        return Assembled(group.id, first, text, len(seqs), group.total, complete)
