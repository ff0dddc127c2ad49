"""Request templates: `{name}` placeholders filled from one request's message fields.

A provider described only by its API documentation is configured as data: the URL,
query, form and JSON body are templates. In a JSON body a value that is exactly one
placeholder keeps its type (`"{to_list}"` becomes a JSON array, `"{flash}"` a boolean);
elsewhere values are written as text (booleans as 1/0). A key whose value is one
placeholder with nothing to say (no sender, no validity, no callback URL) is left out,
so optional provider fields are only sent when there is something to send.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

PLACEHOLDERS: dict[str, str] = {
    "to": "recipient, E.164 digits without '+' (the first one when batched)",
    "to_plus": "recipient, E.164 with '+'",
    "to_list": "every recipient of the request, digits without '+' (a JSON array)",
    "to_csv": "every recipient of the request, comma-separated",
    "from": "sender as submitted (digits or alphanumeric); empty = provider default",
    "from_kind": "'international' for a number sender, 'alphanumeric' otherwise",
    "text": "the text: the whole message, or this part's when parts are sent one by one",
    "parts": "number of SMS parts of the message",
    "seq": "number of this part (1 when the provider concatenates)",
    "ref": "concatenation reference of the message (0 for one part)",
    "udh": "this part's user data header in hex (empty unless parts are sent one by one)",
    "coding": "Kannel's numbering: 0 = GSM 03.38, 2 = UCS-2",
    "unicode": "true when the text needs UCS-2",
    "flash": "true for a flash SMS (class 0)",
    "mclass": "0 for a flash SMS, empty otherwise (Kannel's mclass)",
    "validity": "seconds the message stays valid, empty = provider default",
    "validity_minutes": "the same in whole minutes (Kannel's validity)",
    "report": "true when a delivery report is wanted",
    "dlr_mask": "Kannel dlr-mask: 19 (delivered, undelivered, refused) or 0",
    "id": "our message id",
    "part_id": "our id of this part: '<message id>.<seq>'",
    "dlr_url": "URL the provider posts delivery reports to (empty without callbacks)",
    "mo_url": "URL the provider posts inbound SMS to (empty without callbacks)",
}

_FIELD = re.compile(r"\{([a-z_]+)\}")


def check(template: Any, where: str) -> None:
    """ValueError naming an unknown placeholder, so check-config finds typos."""
    if isinstance(template, str):
        for name in _FIELD.findall(template):
            if name not in PLACEHOLDERS:
                raise ValueError(f"{where}: unknown placeholder {{{name}}} "
                                 f"(known: {', '.join(sorted(PLACEHOLDERS))})")
    elif isinstance(template, Mapping):
        for key, value in template.items():
            check(value, f"{where}.{key}")
    elif isinstance(template, list):
        for i, value in enumerate(template):
            check(value, f"{where}[{i}]")


def as_text(value: Any) -> str:
    """A value as it is written into a URL, query or form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def render_text(template: str, values: Mapping[str, Any],
                escape: Callable[[str], str] | None = None) -> str:
    """Every placeholder written as text (and escaped, in a URL)."""
    if "{" not in template:
        return template
    if escape is None:
        return _FIELD.sub(lambda m: as_text(values[m.group(1)]), template)
    return _FIELD.sub(lambda m: escape(as_text(values[m.group(1)])), template)


def _only(template: str) -> str | None:
    m = _FIELD.fullmatch(template)
    return m.group(1) if m else None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def render_fields(template: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    """A query or form: text values; a field that is one empty placeholder is left out."""
    out = {}
    for key, tpl in template.items():
        name = _only(tpl)
        if name is not None and _empty(values[name]):
            continue
        out[key] = render_text(tpl, values)
    return out


def render_json(template: Any, values: Mapping[str, Any]) -> Any:
    """A JSON body: a lone placeholder keeps its type; an empty one drops its key."""
    if isinstance(template, str):
        name = _only(template)
        return values[name] if name is not None else render_text(template, values)
    if isinstance(template, Mapping):
        out = {}
        for key, tpl in template.items():
            if isinstance(tpl, str):
                name = _only(tpl)
                if name is not None and _empty(values[name]):
                    continue
            out[key] = render_json(tpl, values)
        return out
    if isinstance(template, list):
        return [render_json(t, values) for t in template]
    return template
