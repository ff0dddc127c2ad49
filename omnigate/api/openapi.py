"""The OpenAPI 3.1 description of the HTTP ingress, served at /api/v1/openapi.json.

Kept as data beside `http.ROUTES`; tests/api/test_http_api.py checks that the
two list the same methods and paths, so the document cannot drift from the app.
"""

from __future__ import annotations

import copy
from typing import Any

_STATUS_WORDS = ["accepted", "queued", "sending", "sent", "delivered", "undelivered", "failed",
                 "expired", "rejected"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, example: str | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"type": "string"}}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"text/plain": media}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


_JSON_ERROR = _json(_ref("Error"), "refused; `field` names the offending input")
_TEXT_ERROR = _text("refused: one line `ERROR <field>: <reason>` (JSON Error when asked)",
                    "ERROR numbers: missing")
_BOTH_ERRORS = {
    "description": "refused: one line `ERROR <field>: <reason>`, or a JSON Error when "
                   "`Accept: application/json` or `format=json`",
    "content": {"text/plain": {"schema": {"type": "string"}},
                "application/json": {"schema": _ref("Error")}},
}
_AUTH_ERRORS = {
    "401": {**_BOTH_ERRORS, "description": "credentials missing or wrong (accounts configured)"},
    "403": {**_BOTH_ERRORS, "description": "client address not allowed"},
}

_SEND_PARAMS = [
    _query("numbers", "recipients separated by commas; national numbers use the default region",
           required=True),
    _query("text", "the message", required=True),
    _query("from", "sender: a number or an alphanumeric name"),
    _query("flash", "1 for a flash SMS (class 0)", {"type": "string", "enum": ["0", "1"]}),
    _query("format", "json for a JSON answer (or send Accept: application/json)",
           {"type": "string", "enum": ["json"]}),
]

_SEND = {
    "summary": "Send one text to one or more numbers (product sheet form)",
    "parameters": _SEND_PARAMS,
    "responses": {
        "200": {
            "description": "committed: one line `OK <id> <E.164 number> <parts>` per recipient",
            "content": {"text/plain": {"schema": {"type": "string"},
                                       "example": "OK 17 +46705123456 1\n"},
                        "application/json": {"schema": _ref("Accepted")}},
        },
        "400": _BOTH_ERRORS, **_AUTH_ERRORS, "413": _BOTH_ERRORS, "429": _BOTH_ERRORS,
    },
}

_KANNEL_PARAMS = [
    _query("username", "account name (or HTTP Basic)"),
    _query("password", "account password"),
    _query("from", "sender"),
    _query("to", "recipients separated by spaces ('+' in a URL) or commas", required=True),
    _query("text", "the message, in `charset`", required=True),
    _query("charset", "charset of the text bytes (default UTF-8), e.g. ISO-8859-1"),
    _query("coding", "0 = 7-bit, 1 = 8-bit (as 0), 2 = UCS-2", {"type": "integer", "enum": [0, 1, 2]}),
    _query("mclass", "message class; 0 = flash", {"type": "integer", "minimum": 0, "maximum": 3}),
    _query("validity", "minutes until the message expires", {"type": "integer", "minimum": 1}),
    _query("dlr-mask", "Kannel DLR mask; a report is asked for when bit 1 or 2 is set",
           {"type": "integer", "minimum": 0, "maximum": 255}),
    _query("dlr-url", "GET when an event of dlr-mask happens; Kannel %-escapes (%d %A %i %I %p %P %q %T)"),
    _query("smsc", "accepted and ignored"),
]

_KANNEL = {
    "summary": "Kannel smsbox compatible sendsms",
    "parameters": _KANNEL_PARAMS,
    "responses": {
        "202": _text("committed", "0: Accepted for delivery"),
        "400": _TEXT_ERROR,
        "401": _text("credentials missing or wrong"),
        "403": _text("client address not allowed"),
        "413": _TEXT_ERROR,
        "429": _TEXT_ERROR,
    },
}


def _form_body(params: list[dict[str, Any]]) -> dict[str, Any]:
    properties = {p["name"]: {**p["schema"], "description": p["description"]} for p in params}
    required = [p["name"] for p in params if p["required"]]
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": False,
            "description": "the same parameters as a form (they override the query)",
            "content": {"application/x-www-form-urlencoded": {"schema": schema},
                        "multipart/form-data": {"schema": schema}}}


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["field", "reason"],
            "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
        }},
    },
    "Submission": {
        "type": "object",
        "additionalProperties": False,
        "required": ["to", "text"],
        "properties": {
            "to": {"oneOf": [{"type": "string", "description": "one or more, comma-separated"},
                             {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
            "text": {"type": "string"},
            "from": {"type": ["string", "null"]},
            "flash": {"type": "boolean", "default": False},
            "validity": {"type": "number", "exclusiveMinimum": 0, "description": "seconds"},
            "priority": {"type": "integer", "default": 0},
            "schedule_at": {"type": "string", "format": "date-time",
                            "description": "ISO 8601 with a timezone"},
            "client_ref": {"type": "string", "minLength": 1, "maxLength": 255,
                           "description": "makes resubmission idempotent"},
            "dlr_url": {"type": "string", "format": "uri",
                        "description": "Kannel-style status callback (%d %A %I %p %P %q %T); "
                                       "with dlr_mask"},
            "dlr_mask": {"type": "integer", "minimum": 1, "maximum": 31,
                         "description": "Kannel dlr-mask: 1 delivered, 2 undelivered, "
                                        "8 taken by the carrier, 16 refused"},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["messages"],
        "properties": {"messages": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "to", "status", "parts"],
            "properties": {"id": {"type": "integer"},
                           "to": {"type": "string", "example": "+46701234567"},
                           "status": {"type": "string", "enum": _STATUS_WORDS},
                           "parts": {"type": "integer"}},
        }}},
    },
    "Event": {
        "type": "object",
        "properties": {"at": {"type": "string", "format": "date-time"},
                       "status": {"type": "string", "enum": _STATUS_WORDS},
                       "link": {"type": ["string", "null"]},
                       "node": {"type": ["string", "null"]},
                       "reason": {"type": ["string", "null"]}},
    },
    "Message": {
        "type": "object",
        "properties": {"id": {"type": "integer"},
                       "to": {"type": "string"},
                       "from": {"type": ["string", "null"]},
                       "text": {"type": "string"},
                       "status": {"type": "string", "enum": _STATUS_WORDS},
                       "parts": {"type": "integer"},
                       "flash": {"type": "boolean"},
                       "priority": {"type": "integer"},
                       "created_at": {"type": "string", "format": "date-time"},
                       "updated_at": {"type": "string", "format": "date-time"},
                       "error": {"type": ["string", "null"]},
                       "events": {"type": "array", "items": _ref("Event")}},
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "omnigate HTTP API", "version": "", "description":
             "SMS gateway ingress. Every refusal names the offending field."},
    "security": [{}, {"basic": []}, {"bearer": []}, {"apiKey": []},
                 {"kannelUser": [], "kannelPassword": []}],
    "paths": {
        "/send": {
            "get": {**_SEND, "operationId": "sendGet"},
            "post": {**_SEND, "operationId": "sendPost", "requestBody": _form_body(_SEND_PARAMS)},
        },
        "/cgi-bin/sendsms": {
            "get": {**_KANNEL, "operationId": "kannelSendsmsGet"},
            "post": {**_KANNEL, "operationId": "kannelSendsmsPost",
                     "requestBody": _form_body(_KANNEL_PARAMS)},
        },
        "/api/v1/messages": {
            "post": {
                "operationId": "submitMessage",
                "summary": "Submit one text to one or more recipients",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": _ref("Submission")}}},
                "responses": {"202": _json(_ref("Accepted"), "committed"),
                              "400": _JSON_ERROR, "401": _JSON_ERROR, "403": _JSON_ERROR,
                              "413": _JSON_ERROR, "429": _JSON_ERROR},
            },
            "get": {
                "operationId": "listMessages",
                "summary": "Recent messages, newest first",
                "parameters": [
                    _query("status", "only this status", {"type": "string",
                                                          "enum": _STATUS_WORDS}),
                    _query("to", "only this recipient"),
                    _query("since", "only created at or after (ISO 8601 with timezone)",
                           {"type": "string", "format": "date-time"}),
                    _query("limit", "at most this many",
                           {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
                ],
                "responses": {
                    "200": _json({"type": "object", "required": ["messages"],
                                  "properties": {"messages": {"type": "array",
                                                              "items": _ref("Message")}}},
                                 "messages without their events"),
                    "400": _JSON_ERROR, "401": _JSON_ERROR, "403": _JSON_ERROR,
                },
            },
        },
        "/api/v1/messages/{id}": {
            "get": {
                "operationId": "getMessage",
                "summary": "One message with its events",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": _json(_ref("Message"), "the message"),
                              "400": _JSON_ERROR, "401": _JSON_ERROR, "403": _JSON_ERROR,
                              "404": _JSON_ERROR},
            },
        },
        "/api/v1/inbound": {
            "get": {
                "operationId": "listInbound",
                "summary": "Inbound SMS, newest first, with their tracking reference and routing",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": [
                        "received", "delivered", "partly", "failed", "unrouted"]}},
                    {"name": "from", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1}}],
                "responses": {"200": _json({"type": "object", "required": ["inbound"],
                                            "properties": {"inbound": {"type": "array", "items": {
                                                "type": "object"}}}}, "the inbound messages"),
                              "400": _JSON_ERROR, "401": _JSON_ERROR, "403": _JSON_ERROR},
            },
        },
        "/api/v1/inbound/{reference}": {
            "get": {
                "operationId": "getInbound",
                "summary": "One inbound SMS by its tracking reference (IN-2026-000123)",
                "parameters": [{"name": "reference", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object"}, "the inbound message"),
                              "401": _JSON_ERROR, "403": _JSON_ERROR, "404": _JSON_ERROR},
            },
        },
        "/api/v1/links": {
            "get": {
                "operationId": "listLinks",
                "summary": "Carrier links and their state",
                "responses": {"200": _json({"type": "object", "required": ["links"],
                                            "properties": {"links": {"type": "array", "items": {
                                                "type": "object"}}}}, "the links"),
                              "401": _JSON_ERROR, "403": _JSON_ERROR},
            },
        },
        "/api/v1/cluster": {
            "get": {
                "operationId": "getCluster",
                "summary": "Nodes sharing this store, their heartbeats and exclusive links",
                "responses": {"200": _json({"type": "object", "required": ["node", "clustered"],
                                            "properties": {"node": {"type": "string"},
                                                           "clustered": {"type": "boolean"},
                                                           "nodes": {"type": "array", "items": {
                                                               "type": "object"}}}},
                                           "the cluster"),
                              "401": _JSON_ERROR, "403": _JSON_ERROR},
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document"),
                              "401": _JSON_ERROR, "403": _JSON_ERROR},
            },
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness and readiness (client network check only)",
                "security": [{}],
                "responses": {"200": _json({"type": "object"}, "status is ok"),
                              "503": _json({"type": "object"}, "status is not ok"),
                              "403": _JSON_ERROR},
            },
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (client network check only)",
                "security": [{}],
                "responses": {"200": {"description": "Prometheus text format 0.0.4",
                                      "content": {"text/plain; version=0.0.4": {
                                          "schema": {"type": "string"}}}},
                              "403": _TEXT_ERROR},
            },
        },
    },
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "kannelUser": {"type": "apiKey", "in": "query", "name": "username"},
            "kannelPassword": {"type": "apiKey", "in": "query", "name": "password"},
        },
    },
}


def document(version: str) -> dict[str, Any]:
    """The document for this build (a fresh copy: callers may change it)."""
    doc = copy.deepcopy(_DOCUMENT)
    doc["info"]["version"] = version
    return doc


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation a document describes."""
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item
            if m in methods}
