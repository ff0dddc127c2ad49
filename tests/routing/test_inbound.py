"""Inbound routing rules and reassembly of long MO messages (pure, no I/O)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from omnigate.config import ConfigError, parse
from omnigate.model import Inbound
from omnigate.routing.inbound import InboundRouter
from omnigate.sms.reassembly import Reassembler

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

ROUTER = InboundRouter(
    numbers={"46701234561": ["mailto:anna@company.se"], "4670123456*": ["mailto:desk@company.se"],
             "467012345*": ["mailto:switchboard@company.se"]},
    aliases={"Anna": ["mailto:anna@company.se"], "4711": ["http://crm.example/sms"]},
    senders={"+46709999999": ["file:"]},
    default=["mailto:sms@company.se"])


def test_receiving_number_exact_then_longest_prefix() -> None:
    assert ROUTER.route("46705555555", "46701234561", "hi").targets == ("mailto:anna@company.se",)
    d = ROUTER.route("46705555555", "46701234569", "hi")
    assert (d.rule, d.targets) == ("number", ("mailto:desk@company.se",))
    assert ROUTER.route("46705555555", "+46701234500", "hi").targets == (
        "mailto:switchboard@company.se",)


def test_alias_is_the_first_word_any_case_and_is_removed() -> None:
    d = ROUTER.route("46705555555", "4670000", "ANNA  ring mig")
    assert (d.rule, d.targets, d.text) == ("alias", ("mailto:anna@company.se",), "ring mig")
    assert ROUTER.route("46705555555", "4670000", "4711 order 17").targets == (
        "http://crm.example/sms",)
    assert ROUTER.route("46705555555", "4670000", "Annabel here").rule == "default"


def test_last_sender_then_sender_rules_then_default() -> None:
    last = ["mailto:bob@company.se"]
    assert ROUTER.route("46709999999", "4670000", "ok", last).rule == "last_sender"
    assert ROUTER.route("46709999999", "4670000", "ok").targets == ("file:",)
    d = ROUTER.route("46701111111", "4670000", "who?")
    assert (d.rule, d.targets, d.text) == ("default", ("mailto:sms@company.se",), "who?")


def test_order_is_configurable_and_nothing_matches_without_default() -> None:
    r = InboundRouter(order=["sender", "alias"], aliases={"a": ["file:"]},
                      senders={"4670": ["reply:hej"]})
    assert r.route("4670", "1", "a b").rule == "sender"
    assert r.route("4671", "1", "x") is None
    assert not r.wants_last_sender


def test_bad_targets_are_config_errors() -> None:
    with pytest.raises(ConfigError) as exc:
        parse({"inbound": {"default": ["smtp://x"], "aliases": {"a": ["mailto:nobody"]},
                           "senders": {"1": ["reply: "]}}})
    text = str(exc.value)
    assert "'smtp://x'" in text and "'mailto:nobody'" in text and "reply: needs a text" in text


# -- reassembly --------------------------------------------------------------------


def part(seq: int, text: str, total: int = 3, ref: int = 0x1234, sender: str = "4670",
         link: str = "smsc1") -> Inbound:
    return Inbound(link, sender, "4671", text, T0, concat=(ref, total, seq))


def reassembler(wait: float = 60) -> Reassembler:
    ids = itertools.count(100)
    return Reassembler(wait, lambda: next(ids))


def test_parts_out_of_order_and_twice_make_one_message() -> None:
    r = reassembler()
    assert r.add(part(3, "C"), 0) == (100, None)
    assert r.add(part(1, "A"), 1) == (100, None)
    assert r.add(part(3, "C"), 2) == (100, None)  # resent
    mid, done = r.add(part(2, "B"), 3)
    assert mid == 100 and done is not None
    assert (done.text, done.parts, done.total, done.complete) == ("ABC", 3, 3, True)
    assert len(r) == 0


def test_groups_are_kept_apart_by_sender_link_and_reference() -> None:
    r = reassembler()
    r.add(part(1, "a", total=2), 0)
    r.add(part(1, "x", total=2, sender="4679"), 0)
    r.add(part(1, "y", total=2, link="other"), 0)
    r.add(part(1, "z", total=2, ref=0x1235), 0)
    assert len(r) == 4
    assert r.add(part(2, "b", total=2), 1)[1].text == "ab"  # type: ignore[union-attr]


def test_missing_part_is_delivered_incomplete_after_the_wait() -> None:
    r = reassembler(wait=30)
    r.add(part(1, "A"), 0)
    r.add(part(3, "C"), 5)
    assert r.next_deadline() == 30
    assert r.expired(29.9) == []
    [done] = r.expired(30)
    assert (done.text, done.parts, done.total, done.complete) == ("AC", 2, 3, False)
    assert r.next_deadline() is None


def test_single_part_and_restored_ids() -> None:
    r = reassembler()
    single = Inbound("smsc1", "4670", "4671", "hi", T0)
    mid, done = r.add(single, 0)
    assert mid == 100 and done is not None and done.complete and done.text == "hi"
    assert r.add(part(1, "A", total=2), 0, id=7)[0] == 7
    assert r.add(part(2, "B", total=2), 0)[1].id == 7  # type: ignore[union-attr]


# -- two-way dialog -------------------------------------------------------------------


def test_each_phone_gets_the_dialog_number_it_heard_from_longest_ago() -> None:
    from omnigate.model import Origin, SubmitRequest
    from omnigate.routing.dialog import Dialogs

    d = Dialogs(["+4670000001", "4670000002", "4670000003"], origins=["smtp"])
    mail = SubmitRequest(to=["x"], text="t", origin=Origin.SMTP)
    got = [d.assign(mail, ["+46701"]).sender for _ in range(4)]
    assert got[:3] == ["4670000001", "4670000002", "4670000003"] and got[3] == "4670000001"
    # a second phone starts fresh, whatever the first one had
    assert d.assign(mail, ["+46702"]).sender not in (None, "")
    # several recipients: the number none of them heard from most recently
    d2 = Dialogs(["1", "2"], origins=["smtp"])
    d2.assign(mail, ["+a"])  # +a heard from 1
    assert d2.assign(mail, ["+a", "+b"]).sender == "2"
    assert "+4670000002" in d and "4679" not in d


def test_dialog_numbers_only_for_their_origins_and_messages_without_a_sender() -> None:
    from omnigate.model import Origin, SubmitRequest
    from omnigate.routing.dialog import Dialogs

    d = Dialogs(["1"], origins=["smtp"])
    assert d.wants(SubmitRequest(to=["x"], text="t", origin=Origin.SMTP))
    assert not d.wants(SubmitRequest(to=["x"], text="t", origin=Origin.HTTP))
    assert not d.wants(SubmitRequest(to=["x"], text="t", origin=Origin.SMTP, sender="ACME"))
    assert not Dialogs([], origins=["smtp"]).wants(
        SubmitRequest(to=["x"], text="t", origin=Origin.SMTP))


def test_dialog_rule_comes_first_and_uses_the_callers_targets() -> None:
    d = ROUTER.route("46705555555", "46701234561", "yes", last_sender=["mailto:bob@x.se"],
                     dialog=["mailto:anna@x.se"])
    assert (d.rule, d.targets) == ("dialog", ("mailto:anna@x.se",))
