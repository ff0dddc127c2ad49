"""Request templates and the http link's config (issue 8): placeholders, typed JSON,
left-out empties, profile presets, and config mistakes reported with their path."""

from __future__ import annotations

from typing import Any

import pytest

from omnigate.carriers import resolve
from omnigate.carriers.http.config import HttpConfig
from omnigate.carriers.http.hooks import pointer
from omnigate.carriers.http.profiles import PROFILES, settings
from omnigate.carriers.http.template import (
    PLACEHOLDERS,
    render_fields,
    render_json,
    render_text,
)
from omnigate.config import LinkEntry

VALUES: dict[str, Any] = {name: None for name in PLACEHOLDERS} | {
    "to": "46701234567", "to_list": ["46701234567", "46707654321"], "text": "Hej & 100%",
    "flash": True, "parts": 2, "validity": None, "from": "", "id": 42}


def test_json_keeps_types_and_leaves_out_empty_fields() -> None:
    body = render_json({"to": "{to_list}", "msg": "{text}", "flash": "{flash}",
                        "n": "{parts}", "from": "{from}", "validity": "{validity}",
                        "ref": "om-{id}", "nested": [{"x": "{to}"}], "fixed": 7}, VALUES)
    assert body == {"to": ["46701234567", "46707654321"], "msg": "Hej & 100%", "flash": True,
                    "n": 2, "ref": "om-42", "nested": [{"x": "46701234567"}], "fixed": 7}


def test_fields_are_text_and_empties_left_out() -> None:
    assert render_fields({"to": "{to}", "flash": "{flash}", "from": "{from}",
                          "all": "{to_list}", "note": "id {id}"}, VALUES) == {
        "to": "46701234567", "flash": "1", "all": "46701234567,46707654321", "note": "id 42"}


def test_text_escaped_in_urls() -> None:
    from urllib.parse import quote

    url = render_text("https://p.example/send/{to}/{text}", VALUES, lambda v: quote(v, safe=""))
    assert url == "https://p.example/send/46701234567/Hej%20%26%20100%25"


def test_json_pointer_with_arrays() -> None:
    doc = {"messages": [{"id": 1}, {"id": 2}], "a/b": {"~": "x"}}
    assert pointer(doc, "/messages/*/id") == [1, 2]
    assert pointer(doc, "/messages/1/id") == 2
    assert pointer(doc, "/a~1b/~0") == "x"
    assert pointer(doc, "/missing/id") is None and pointer(doc, "") is doc


def entry(**fields: Any) -> LinkEntry:
    return LinkEntry.model_validate({"name": "p", "type": "http", **fields})


@pytest.mark.parametrize(("fields", "problem"), [
    ({"profile": "generic", "url": "https://p/{recipient}"},
     "links[0]: Value error, url: unknown placeholder {recipient}"),
    ({"profile": "kannel"}, "url: profile 'kannel' needs the provider's URL"),
    ({"profile": "websms", "token": "t", "username": "u", "password": "p"},
     "one auth style at a time"),
    ({"profile": "websms", "api_key": "k"}, "exactly one of api_key_header or api_key_query"),
    ({"profile": "websms", "username": "u"}, "username and password go together"),
    ({"profile": "websms", "url": "ftp://x"}, "links[0].url: Value error, 'ftp://x' is not"),
    ({"profile": "websms", "id_regex": "("}, "links[0].id_regex"),
    ({"profile": "websms", "id_pointer": "id"}, "is not a JSON pointer"),
    ({"profile": "websms", "hook_allow": ["10.0.0.300/8"]}, "links[0].hook_allow"),
    ({"profile": "nope"}, "links[0].profile"),
])
def test_config_mistakes_have_their_path(fields: dict[str, Any], problem: str) -> None:
    _, problems = resolve([entry(**fields)])
    assert any(problem in p for p in problems), problems


def test_profile_presets_and_the_config_wins() -> None:
    s = settings(HttpConfig.model_validate({"name": "w", "profile": "websms", "token": "t",
                                            "batch": 5}))
    assert s.url == PROFILES["websms"]["url"] and s.method == "POST"
    assert s.batch == 5 and s.concat == "provider"
    assert s.json_body["recipientAddressList"] == "{to_list}"
    generic = settings(HttpConfig.model_validate(
        {"name": "g", "url": "https://p/x", "form": {"to": "{to}"}}))
    assert generic.method == "POST" and generic.batch is None
    assert settings(HttpConfig.model_validate({"name": "g", "url": "https://p/x"})).method == "GET"


def test_every_profile_uses_only_known_placeholders() -> None:
    for name in PROFILES:
        url = None if name == "websms" else "https://p.example/x"
        resolved, problems = resolve([entry(profile=name, url=url)])
        assert problems == [] and len(resolved) == 1
        HttpConfig.model_validate({"name": "x", **PROFILES[name], "profile": name,
                                   "url": url or PROFILES[name]["url"]})
