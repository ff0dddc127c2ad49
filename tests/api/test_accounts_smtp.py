"""The account checks of `Gateway.submit` reach the SMTP ingress too: a real smtplib
client, answers in SMTP's own terms (RFC 5321 reply codes, RFC 3463 status codes)."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from omnigate.api.auth import hash_secret
from omnigate.gateway import Gateway
from tests.support import make_config

DOMAIN = "sms.example.com"


async def start(gateway_factory: Callable[..., Any], store_url: str, smsc: Any, tmp_path: Path,
                accounts: list[dict[str, Any]], **smtp: Any) -> Gateway:
    config = make_config(store_url, smsc.port, tmp_path, accounts=accounts,
                         smtp={"listen": "127.0.0.1:0", "domains": [DOMAIN], **smtp})
    return await gateway_factory(config)


def send_mail(port: int, sender: str, text: str, login: tuple[str, str] | None = None
              ) -> tuple[int, bytes]:
    """One mail to one number; the DATA reply (smtplib raises on refusals: caught here)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, f"0701234567@{DOMAIN}", text
    msg.set_content("")
    with smtplib.SMTP("127.0.0.1", port, timeout=5.0) as s:
        s.ehlo()
        if login:
            s.login(*login)
        try:
            s.send_message(msg)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
        return 250, b""


async def test_account_over_its_daily_quota_is_refused_by_mail(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    # no AUTH: the envelope sender finds the account by its mail_senders pattern
    gw = await start(gateway_factory, store_url, smsc, tmp_path,
                     [{"name": "monitoring", "mail_senders": ["*@ops.example.com"],
                       "daily_quota": 1, "footer": " /ops"}])
    assert gw.smtp is not None
    code, _ = await asyncio.to_thread(send_mail, gw.smtp.port, "nagios@ops.example.com", "disk")
    assert code == 250
    code, reply = await asyncio.to_thread(send_mail, gw.smtp.port, "nagios@ops.example.com",
                                          "disk again")
    assert code == 554 and b"daily_quota" in reply and b"monitoring" in reply
    assert gw.accounts.usage["monitoring"].day_parts == 1
    assert [text for _, _, text in smsc.messages()] == ["disk /ops"]


async def test_logged_in_account_may_not_use_a_foreign_mail_sender(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    gw = await start(gateway_factory, store_url, smsc, tmp_path,
                     [{"name": "alarms", "password_hash": hash_secret("s3cret"),
                       "mail_senders": ["*@example.com"]}],
                     auth_required=True, auth_require_tls=False)
    assert gw.smtp is not None
    login = ("alarms", "s3cret")
    code, reply = await asyncio.to_thread(send_mail, gw.smtp.port, "eve@evil.example", "x", login)
    assert code == 550 and b"mail_from" in reply
    code, _ = await asyncio.to_thread(send_mail, gw.smtp.port, "bob@example.com", "ok", login)
    assert code == 250
    assert gw.accounts.usage["alarms"].day_parts == 1
