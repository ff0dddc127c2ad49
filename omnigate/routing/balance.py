"""Smooth weighted round robin (as in nginx's upstream balancer).

Each pick adds every candidate's weight to its running score, takes the
highest score and subtracts the round's total weight from the winner. Over
any stretch the shares follow the weights, and picks interleave
(3:1 gives a a b a, a a b a, ...) instead of coming in bursts, which keeps
both links' windows busy. Candidates are only the links usable at this
moment (up, not suspended, circuit closed, rate tokens left), so a broken
link sits out rounds without skewing the shares of the others. A link whose
window is full keeps its turn: the tier waits for it (see `pick`), so under
full load the shares still follow the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


class WeightedPicker:
    __slots__ = ("_score", "weights")

    def __init__(self, weights: Mapping[str, int]) -> None:
        self.weights = dict(weights)
        self._score = dict.fromkeys(weights, 0)

    def pick(self, candidates: Sequence[str], load: Mapping[str, int] | None = None,
             accept: Callable[[str], bool] | None = None) -> str | None:
        """The next link among `candidates` (equal scores go to the lower `load`).

        When `accept` refuses the winner (its window is full) the round does not
        count and None is returned: the same link is asked again next time, so
        a busy link is waited for rather than its share given to the others.
        """
        score, weights = self._score, self.weights
        total = 0
        best = candidates[0]
        best_key: tuple[int, int] | None = None
        for name in candidates:
            w = weights.get(name, 1)
            total += w
            key = (score.get(name, 0) + w, -(load or {}).get(name, 0))
            if best_key is None or key > best_key:
                best, best_key = name, key
        if accept is not None and not accept(best):
            return None
        for name in candidates:
            score[name] = score.get(name, 0) + weights.get(name, 1)
        score[best] -= total
        return best
