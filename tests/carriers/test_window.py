"""The window the sans-I/O sessions share: outstanding requests, deadlines, keep-alive.

Time is only the `now` passed in; nothing waits.
"""

from __future__ import annotations

import pytest

from omnigate.carriers.window import Window

SUBMIT, PROBE, LOGIN = 4, 21, 9


def window(timeout: float = 10.0, keepalive: float = 30.0) -> Window:
    return Window(response_timeout=timeout, keepalive=keepalive, submit_op=SUBMIT,
                  probe_op=PROBE)


def test_add_and_take_count_submits_and_keep_deadline_order() -> None:
    w = window()
    w.add(1, LOGIN, None, now=0.0)
    w.add_submit(2, "a", now=1.0)
    w.add(3, SUBMIT, "b", now=2.0)
    assert w.submits == 2 and w.oldest() == 1
    assert w.pending[2] == (SUBMIT, 11.0, "a", None)
    assert w.take_submit(2) == (SUBMIT, 11.0, "a", None)
    assert w.take(3, SUBMIT) == (SUBMIT, 12.0, "b", None)
    assert w.submits == 0
    assert w.take(1, LOGIN) is not None and not w.pending


def test_answer_of_another_operation_leaves_the_request_waiting() -> None:
    w = window()
    w.add(5, LOGIN, None, now=0.0)
    w.add_submit(6, "a", now=0.0)
    assert w.take(5, SUBMIT) is None and w.take_submit(5) is None
    assert w.take(6, LOGIN) is None
    assert w.take(7, SUBMIT) is None and w.take_submit(7) is None
    assert list(w.pending) == [5, 6] and w.submits == 1


def test_pop_settles_whatever_operation() -> None:
    w = window()
    w.add_submit(1, "a", now=0.0)
    w.add(2, PROBE, None, now=0.0)
    assert w.probing
    assert w.pop(2) == (PROBE, 10.0, None, None) and not w.probing
    assert w.pop(1) is not None and w.submits == 0
    assert w.pop(1) is None


def test_expire_returns_due_requests_oldest_first_and_settles_them() -> None:
    w = window(timeout=10.0)
    w.add_submit(1, "a", now=0.0)
    w.add(2, PROBE, None, now=1.0)
    w.add_submit(3, "c", now=5.0)
    assert w.expire(9.9) == []
    assert w.expire(11.0) == [(1, (SUBMIT, 10.0, "a", None)), (2, (PROBE, 11.0, None, None))]
    assert w.submits == 1 and not w.probing and list(w.pending) == [3]
    assert w.next_deadline(keepalive=False) == 15.0


def test_renew_moves_to_the_end_with_a_fresh_deadline() -> None:
    w = window(timeout=10.0)
    w.add_submit(1, "a", now=0.0, extra=b"packet")
    w.add_submit(3, "b", now=1.0, extra=b"other")
    assert w.renew(1, now=2.0) == (SUBMIT, 12.0, "a", None)
    assert list(w.pending) == [3, 1] and w.submits == 2
    assert w.next_deadline(keepalive=False) == 11.0
    with pytest.raises(KeyError):
        w.renew(99, now=2.0)


def test_next_deadline_is_the_sooner_of_response_and_idle() -> None:
    w = window(timeout=10.0, keepalive=30.0)
    assert w.next_deadline(keepalive=False) is None
    w.last = 5.0
    assert w.next_deadline(keepalive=True) == 35.0
    w.add_submit(1, "a", now=20.0)
    assert w.next_deadline(keepalive=True) == 30.0
    assert w.next_deadline(keepalive=False) == 30.0
    w.last = 0.0
    assert w.next_deadline(keepalive=True) == 30.0  # idle ends at 30 too
    w.last = -5.0
    assert w.next_deadline(keepalive=True) == 25.0


def test_probe_is_due_once_idle_and_not_while_one_is_out() -> None:
    w = window(keepalive=30.0)
    w.last = 100.0
    assert not w.probe_due(129.9, keepalive=True)
    assert w.probe_due(130.0, keepalive=True)
    assert not w.probe_due(130.0, keepalive=False)  # not logged in: nothing to keep alive
    w.add(7, PROBE, None, now=130.0)
    assert not w.probe_due(500.0, keepalive=True)
    assert w.next_deadline(keepalive=True) == 140.0  # only the probe's answer
    assert w.take(7, PROBE) is not None and not w.probing
    w.last = 131.0
    assert w.next_deadline(keepalive=True) == 161.0


def test_close_returns_held_tokens_in_order_sent_and_forgets_all() -> None:
    w = window()
    w.add(1, LOGIN, None, now=0.0)
    w.add_submit(2, "a", now=0.0)
    w.add(3, PROBE, None, now=0.0)
    w.add_submit(4, "b", now=0.0)
    w.renew(2, now=1.0)
    assert w.close() == ["b", "a"]
    assert not w.pending and w.submits == 0 and not w.probing
    assert w.close() == []
