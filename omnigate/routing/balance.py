"""Smooth weighted round robin (as in nginx's upstream balancer).

Each pick adds every candidate's weight to its running score, takes the
highest score and subtracts the round's total weight from the winner. Over
any stretch the shares follow the weights, and picks interleave
(3:1 gives a a b a, a a b a, ...) instead of coming in bursts, which keeps
both links' windows busy. Candidates are only the links usable at this
moment, so a full or broken link simply sits out rounds without skewing the
shares of the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class WeightedPicker:
    __slots__ = ("_score", "weights")

    def __init__(self, weights: Mapping[str, int]) -> None:
        self.weights = dict(weights)
        self._score = dict.fromkeys(weights, 0)

    def pick(self, candidates: Sequence[str], load: Mapping[str, int] | None = None) -> str:
        """The next link among `candidates`; equal scores go to the lower `load`."""
        if len(candidates) == 1:
            return candidates[0]
        score, weights = self._score, self.weights
        total = 0
        best = candidates[0]
        best_key: tuple[int, int] | None = None
        for name in candidates:
            w = weights.get(name, 1)
            total += w
            s = score[name] = score.get(name, 0) + w
            key = (s, -(load or {}).get(name, 0))
            if best_key is None or key > best_key:
                best, best_key = name, key
        score[best] -= total
        return best
