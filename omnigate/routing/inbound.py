"""Inbound routing: who gets an MO message. Pure rules, first hit wins.

The rules, in the configured order:

* `dialog`      - the reply arrived at a dialog number (routing/dialog.py): it goes
                  to whoever sent the message it answers (found by the caller);
* `number`      - the receiving number (a long or virtual number, or a prefix
                  with `*`: the company number plus digits per user);
* `alias`       - the first word of the text (case-insensitive), removed from
                  the forwarded text;
* `last_sender` - whoever last sent this phone an SMS (looked up by the caller,
                  who has the store), within an age limit;
* `sender`      - fixed targets for known sender numbers;
* `default`     - the default mailbox.

Targets are URIs, so one rule can fan out to several kinds: `mailto:`,
`http://`/`https://`, `file:` (a directory; empty = the spool's incoming/),
`table:` (the inbox table of a `[[sql]]` source, by name), `reply:` (an
autoresponse text), `smpp:` (deliver_sm to the SMPP server's binds of an
account) and `account:` (an SMPP client bound as that account, else the
account's own inbound targets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

RULES = ("dialog", "number", "alias", "last_sender", "sender", "default")
TARGET_SCHEMES = ("mailto:", "http://", "https://", "file:", "table:", "reply:", "smpp:",
                  "account:")


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    targets: tuple[str, ...]
    text: str  # what is forwarded (an alias word removed)
    detail: str  # why, for the inbound row and the log


def target_problem(target: str) -> str | None:
    """Why a configured target is unusable, or None."""
    if not target.startswith(TARGET_SCHEMES):
        return f"{target!r}: a target starts with one of {', '.join(TARGET_SCHEMES)}"
    if target.startswith("mailto:") and "@" not in target:
        return f"{target!r}: mailto: needs an address"
    if target.startswith("reply:") and not target[6:].strip():
        return f"{target!r}: reply: needs a text"
    return None


class InboundRouter:
    def __init__(self, *, order: Sequence[str] = RULES,
                 numbers: Mapping[str, Sequence[str]] | None = None,
                 aliases: Mapping[str, Sequence[str]] | None = None,
                 senders: Mapping[str, Sequence[str]] | None = None,
                 default: Sequence[str] = ()) -> None:
        self.order = tuple(order)
        numbers = {k.lstrip("+"): tuple(v) for k, v in (numbers or {}).items()}
        self._exact = {k: v for k, v in numbers.items() if not k.endswith("*")}
        # longest prefix first, so a user's own digits beat the company number
        self._prefixes = sorted(((k[:-1], v) for k, v in numbers.items() if k.endswith("*")),
                                key=lambda kv: -len(kv[0]))
        self._aliases = {k.lower(): tuple(v) for k, v in (aliases or {}).items()}
        self._senders = {k.lstrip("+"): tuple(v) for k, v in (senders or {}).items()}
        self._default = tuple(default)

    @property
    def wants_last_sender(self) -> bool:
        return "last_sender" in self.order

    def route(self, sender: str, recipient: str, text: str, last_sender: Iterable[str] = (),
              dialog: Iterable[str] = ()) -> Decision | None:
        """The decision for one message; `last_sender` and `dialog` are the targets the
        caller found for those rules (they need the store)."""
        found_by = {"last_sender": tuple(last_sender), "dialog": tuple(dialog)}
        for rule in self.order:
            if rule in found_by:
                if found_by[rule]:
                    why = "reply in a dialog" if rule == "dialog" else "last sender to this phone"
                    return Decision(rule, found_by[rule], text, why)
                continue
            found = getattr(self, f"_by_{rule}")(sender.lstrip("+"), recipient.lstrip("+"), text)
            if found is not None:
                return found
        return None

    def _by_number(self, sender: str, recipient: str, text: str) -> Decision | None:
        targets = self._exact.get(recipient)
        if targets is not None:
            return Decision("number", targets, text, f"receiving number {recipient}")
        for prefix, targets in self._prefixes:
            if recipient.startswith(prefix):
                return Decision("number", targets, text, f"receiving number {prefix}*")
        return None

    def _by_alias(self, sender: str, recipient: str, text: str) -> Decision | None:
        word, _, rest = text.strip().partition(" ")
        targets = self._aliases.get(word.lower()) if word else None
        if targets is None:
            return None
        return Decision("alias", targets, rest.lstrip(), f"alias {word.lower()!r}")

    def _by_sender(self, sender: str, recipient: str, text: str) -> Decision | None:
        targets = self._senders.get(sender)
        return Decision("sender", targets, text, f"sender {sender}") if targets else None

    def _by_default(self, sender: str, recipient: str, text: str) -> Decision | None:
        return Decision("default", self._default, text, "default") if self._default else None
