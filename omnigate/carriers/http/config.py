"""The `[[links]] type = "http"` config: a profile plus what the provider needs.

A built-in `profile` fills every field it knows (URL, method, body, how an answer is
judged, how callbacks look); the config then needs only credentials. Every field set
in the config wins over the profile's, so a provider that is "almost websms" needs
one line. `profile = "generic"` presets nothing: URL, body and answer rules come from
the config, as the provider's API documentation describes them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from omnigate.carriers.base import LinkConfig
from omnigate.config import split_hostport

from . import template

ProfileName = Literal["generic", "generic-json", "websms", "kannel", "omnigate"]


def json_pointer(value: str) -> str:
    """RFC 6901: empty (the whole document) or starting with '/'."""
    if value and not value.startswith("/"):
        raise ValueError(f"{value!r} is not a JSON pointer (RFC 6901: starts with '/')")
    return value


class HttpConfig(LinkConfig):
    """One [[links]] entry of type "http"; None means "the profile's value"."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, populate_by_name=True)

    type: Literal["http"] = "http"
    profile: ProfileName = Field("generic", description="built-in provider shape")
    url: str | None = Field(None, description="request URL template (http or https)")
    hosts: list[str] = Field(default_factory=list,
                             description="host:port tried in order instead of the URL's (failover)")
    method: Literal["GET", "POST", "PUT"] | None = None
    query: dict[str, str] | None = Field(None, description="query parameters (templates)")
    form: dict[str, str] | None = Field(None, description="form body (templates)")
    json_body: Any = Field(None, alias="json", description="JSON body (template)")
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers (templates)")
    # auth: at most one style
    username: str | None = Field(None, description="HTTP Basic user")
    password: SecretStr | None = Field(None, description="HTTP Basic password; never logged")
    credentials_in: Literal["header", "query"] | None = Field(
        None, description="username/password as HTTP Basic, or as query fields "
                          "'username' and 'password' (Kannel's sendsms)")
    token: SecretStr | None = Field(None, description="sent as 'Authorization: Bearer'")
    api_key: SecretStr | None = Field(None, description="API key, in api_key_header or api_key_query")
    api_key_header: str | None = Field(None, description="header that carries api_key")
    api_key_query: str | None = Field(None, description="query parameter that carries api_key")
    verify_tls: bool = Field(True, description="check the provider's certificate")
    window: int = Field(10, ge=1, le=1000, description="requests in flight (connection pool size)")
    queue: int = Field(100, ge=0, le=100_000, description="parts held beyond the window")
    response_timeout: float = Field(30.0, gt=0, description="seconds for a whole request")
    batch: int | None = Field(None, ge=1, le=1000,
                              description="recipients per request (same text), if the API takes a list")
    concat: Literal["provider", "parts"] | None = Field(
        None, description="long messages: the whole text once (provider splits) or part by part")
    success_status: list[int] | None = Field(None, description="HTTP codes that mean accepted; "
                                                              "empty = any 2xx")
    success_regex: str | None = Field(None, description="the answer must match this")
    success_pointer: str | None = Field(None, description="JSON pointer whose value must be "
                                                          "one of success_values")
    success_values: list[str] | None = None
    id_regex: str | None = Field(None, description="carrier id: group 1 of this in the answer")
    id_pointer: str | None = Field(None, description="carrier id: JSON pointer in the answer; "
                                                     "an array gives one id per recipient")
    probe_url: str | None = Field(None, description="GET while down to see the provider back "
                                                    "(and the credentials good); None = TCP connect")
    down_after: int = Field(3, ge=1, description="consecutive connection failures or timeouts "
                                                 "that take the link down")
    throttle_backoff: float = Field(1.0, gt=0, description="pause after 429 without Retry-After")
    # callbacks (api/webhooks.py and carriers/http/hooks.py)
    callback_base: str | None = Field(
        None, description="our URL as the provider reaches it, e.g. 'https://sms.example.com'; "
                          "hooks are under /hooks/<link>/dlr and /mo")
    listen: str | None = Field(None, description="also serve this link's hooks on host:port")
    hook_token: SecretStr | None = Field(
        None, description="shared secret callbacks carry (query 'token' or header X-Hook-Token)")
    hook_hmac_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key of the provider's body signature")
    hook_hmac_header: str = Field("X-Signature", description="header with the hex HMAC")
    hook_allow: list[str] = Field(default_factory=list,
                                  description="networks callbacks may come from; empty = any")
    dlr_fields: dict[str, str] | None = Field(
        None, description="DLR callback: id, status, error, recipient, key (of a duplicate) "
                          "-> field name (query/form) or JSON pointer")
    dlr_delivered: list[str] | None = Field(None, description="status values meaning delivered")
    dlr_expired: list[str] | None = Field(None, description="status values meaning expired")
    dlr_pending: list[str] | None = Field(None, description="status values that are not final")
    callback_query: str | None = Field(
        None, description="query our DLR URL carries, with placeholders and the provider's own "
                          "escapes (Kannel's %d, %A)")
    hook_reply: str | None = Field(None, description="body of our answer to a callback")
    mo_fields: dict[str, str] | None = Field(
        None, description="MO callback: from, to, text, key (of a duplicate) -> field name "
                          "(query/form) or JSON pointer")

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for h in hosts:
            split_hostport(h)
        return hosts

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            split_hostport(value)
        return value

    @field_validator("hook_allow")
    @classmethod
    def _allow(cls, values: list[str]) -> list[str]:
        for v in values:
            ipaddress.ip_network(v, strict=False)
        return values

    @field_validator("success_regex", "id_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("success_pointer", "id_pointer")
    @classmethod
    def _pointer(cls, value: str | None) -> str | None:
        return None if value is None else json_pointer(value)

    @field_validator("url", "probe_url", "callback_base")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpConfig:
        for name in ("url", "query", "form", "json_body", "headers", "callback_query"):
            template.check(getattr(self, name), name)
        if self.url is None and self.profile != "websms":
            raise ValueError(f"url: profile {self.profile!r} needs the provider's URL")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (HTTP Basic)")
        styles = [s for s, on in (("username/password", self.username is not None),
                                  ("token", self.token is not None),
                                  ("api_key", self.api_key is not None)) if on]
        if len(styles) > 1:
            raise ValueError(f"one auth style at a time, not {' and '.join(styles)}")
        if self.api_key is not None and (self.api_key_header is None) == (self.api_key_query is None):
            raise ValueError("api_key needs exactly one of api_key_header or api_key_query")
        if self.form is not None and self.json_body is not None:
            raise ValueError("a body is either form or json, not both")
        return self
