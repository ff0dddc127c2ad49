"""Built-in provider profiles: a table of config values, not code (STYLE §5).

Each profile is what its provider's documentation says, written as the same fields a
`generic` link would set by hand; `settings()` lays the config over it. Carrier
references: a provider that returns one id per request for several recipients gets
`<id>:<recipient>`, and a long message the provider splits itself gets one reference
per part, `<id>#<seq>`; the delivery report's callback URL carries the number of
parts (`n`) so one report of the whole message settles each part exactly once.
"""

from __future__ import annotations

from typing import Any

from .config import HttpConfig

_KANNEL_EVENTS = {"dlr_delivered": ["1"], "dlr_expired": [], "dlr_pending": ["4", "8"]}

PROFILES: dict[str, dict[str, Any]] = {
    "generic": {},
    # A common JSON shape many small providers (and `omnigate sim http`) speak.
    "generic-json": {
        "method": "POST", "concat": "provider", "batch": 1,
        "json_body": {"to": "{to}", "from": "{from}", "text": "{text}", "flash": "{flash}",
                      "validity": "{validity}", "reference": "{part_id}",
                      "dlr_url": "{dlr_url}"},
        "id_pointer": "/id",
        "dlr_fields": {"id": "/id", "status": "/status", "error": "/error"},
        "dlr_delivered": ["delivered"], "dlr_expired": ["expired"],
        "dlr_pending": ["accepted", "buffered", "sent"],
        "mo_fields": {"from": "/from", "to": "/to", "text": "/text", "key": "/id"},
    },
    # websms (LINK Mobility) SMS REST API, "text" messages: one request takes a list of
    # recipients and answers one transferId; statusCode 2000/2001 = accepted; delivery
    # reports go to notificationCallbackUrl, inbound SMS to the URL set in the account.
    "websms": {
        "url": "https://api.websms.com/rest/smsmessaging/text", "method": "POST",
        "concat": "provider", "batch": 100,
        "json_body": {"recipientAddressList": "{to_list}", "messageContent": "{text}",
                      "senderAddress": "{from}", "senderAddressType": "{from_kind}",
                      "sendAsFlashSms": "{flash}", "maxSmsPerMessage": "{parts}",
                      "validityPeriode": "{validity}", "clientMessageId": "{id}",
                      "notificationCallbackUrl": "{dlr_url}"},
        "success_pointer": "/statusCode", "success_values": ["2000", "2001"],
        "id_pointer": "/transferId", "probe_url": None,
        "dlr_fields": {"id": "/transferId", "recipient": "/recipientAddress",
                       "status": "/deliveryReportMessageStatus", "key": "/notificationId"},
        "dlr_delivered": ["delivered"], "dlr_expired": ["expired"],
        "dlr_pending": ["accepted", "buffered"],
        "mo_fields": {"from": "/senderAddress", "to": "/recipientAddress",
                      "text": "/textMessageContent", "key": "/notificationId"},
        "hook_reply": '{"statusCode": 2000, "statusMessage": "OK"}',
    },
    # A remote Kannel's smsbox sendsms, one request per part (with its UDH), so each
    # part has its own report; the dlr-url brings our part id back with Kannel's
    # event (%d) and SMSC answer (%A). MO: a Kannel sms-service with get-url
    # '<mo_url>&from=%p&to=%P&text=%a'.
    "kannel": {
        "method": "GET", "concat": "parts", "batch": 1, "credentials_in": "query",
        "query": {"to": "{to_plus}", "from": "{from}", "text": "{text}", "udh": "{udh}",
                  "coding": "{coding}", "charset": "UTF-8", "mclass": "{mclass}",
                  "validity": "{validity_minutes}", "dlr-mask": "{dlr_mask}",
                  "dlr-url": "{dlr_url}"},
        "success_status": [200, 202],
        "callback_query": "ref={part_id}&event=%d&answer=%A",
        "dlr_fields": {"id": "ref", "status": "event", "error": "answer"}, **_KANNEL_EVENTS,
        "mo_fields": {"from": "from", "to": "to", "text": "text"},
    },
    # Another omnigate's JSON API: client_ref makes a resent request idempotent there,
    # its Kannel-style dlr_url (%I its id, %d event, %A answer) brings the status back.
    "omnigate": {
        "method": "POST", "concat": "provider", "batch": 1,
        "json_body": {"to": "{to_plus}", "text": "{text}", "from": "{from}", "flash": "{flash}",
                      "validity": "{validity}", "client_ref": "{part_id}",
                      "dlr_url": "{dlr_url}", "dlr_mask": "{dlr_mask}"},
        "success_status": [202], "id_pointer": "/messages/*/id",
        "callback_query": "ref=%I&event=%d&answer=%A",
        "dlr_fields": {"id": "ref", "status": "event", "error": "answer"}, **_KANNEL_EVENTS,
        "mo_fields": {"from": "/from", "to": "/to", "text": "/text", "key": "/id"},
    },
}


def settings(config: HttpConfig) -> HttpConfig:
    """The config laid over its profile: every field the config sets wins."""
    preset = PROFILES[config.profile]
    update = {k: v for k, v in preset.items() if k not in config.model_fields_set}
    merged = config.model_copy(update=update)
    if merged.method is None:
        merged.method = "POST" if merged.form is not None or merged.json_body is not None else "GET"
    return merged
