"""The SMPP server end to end: smpplib's own Client (synchronous, in a thread) binds to a
real Gateway over loopback, and the SMPP simulator stands behind it as the carrier.

Runs on SQLite and PostgreSQL (the outbox of receipts lives in the store). Every socket
read is bounded by smpplib's timeout (5 s) or an asyncio timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.gsm
from smpplib import smpp
from sqlalchemy.engine import make_url

from omnigate.api.auth import hash_secret
from omnigate.api.smppoutbox import metadata as outbox_metadata
from omnigate.carriers.base import LinkState
from omnigate.model import Inbound
from omnigate.sim.smpp import SmscSimulator
from omnigate.store.db import make_engine
from tests.support import make_config, poll

PASSWORD = "s3cret"  # SMPP passwords are at most 8 octets (SMPP 3.4 §5.2.2)
HASH = hash_secret(PASSWORD)
TO = "46705123456"
WAIT = 10.0


@pytest.fixture
async def url(store_url: str) -> str:
    """The store URL, with the SMPP outbox dropped too (reset_pg drops omnigate's tables)."""
    if make_url(store_url).get_backend_name() == "postgresql":
        engine = make_engine(store_url)
        async with engine.begin() as conn:
            await conn.run_sync(outbox_metadata.drop_all)
        await engine.dispose()
    return store_url


def gateway_config(url: str, smsc: SmscSimulator, tmp_path: Path, **server: Any) -> Any:
    accounts = [{"name": "acme", "password_hash": HASH}, {"name": "other", "password_hash": HASH}]
    return make_config(url, smsc.port, tmp_path, accounts=accounts,
                       smpp_server={"listen": "127.0.0.1:0", "auth_delay": 0.2, **server})


class Client:
    """smpplib's Client driven from the test through a thread; answers deliver_sm itself
    and keeps them."""

    def __init__(self, port: int) -> None:
        self.smpp = smpplib.client.Client("127.0.0.1", port, timeout=5,
                                          allow_unknown_opt_params=True)
        self.delivered: list[Any] = []
        self.answer = True

    async def connect(self) -> Client:
        await asyncio.to_thread(self.smpp.connect)
        return self

    async def bind(self, mode: str = "transceiver", system_id: str = "acme",
                   password: str = PASSWORD) -> Any:
        return await asyncio.to_thread(getattr(self.smpp, f"bind_{mode}"),
                                       system_id=system_id, password=password)

    def _read(self, command: str) -> Any:
        while True:
            pdu = self.smpp.read_pdu()
            if pdu.command == "deliver_sm":
                self.delivered.append(pdu)
                if self.answer:
                    resp = smpp.make_pdu("deliver_sm_resp", client=self.smpp)
                    resp.sequence = pdu.sequence
                    self.smpp.send_pdu(resp)
                if command == "deliver_sm":
                    return pdu
                continue
            if pdu.command == command:
                return pdu

    async def read(self, command: str) -> Any:
        return await asyncio.to_thread(self._read, command)

    async def submit(self, text: str = "hello", to: str = TO, **fields: Any) -> Any:
        """One submit_sm; its submit_sm_resp."""
        await asyncio.to_thread(self.send, text, to, **fields)
        return await self.read("submit_sm_resp")

    def send(self, text: str | bytes, to: str = TO, **fields: Any) -> Any:
        body = text if isinstance(text, bytes) else smpplib.gsm.gsm_encode(text)
        kw = {"source_addr_ton": c.SMPP_TON_ALNUM, "source_addr": "Alarm",
              "dest_addr_ton": c.SMPP_TON_INTL, "dest_addr_npi": c.SMPP_NPI_ISDN,
              "destination_addr": to, "short_message": body, "registered_delivery": 0}
        kw.update(fields)
        return self.smpp.send_message(**kw)

    def close(self) -> None:
        self.smpp.disconnect()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Any]]:
    made: list[Client] = []

    async def make(port: int) -> Client:
        client = Client(port)
        made.append(client)
        return await client.connect()

    yield make
    for client in made:
        await asyncio.to_thread(client.close)


async def message(gw: Any, id: int) -> dict[str, Any]:
    msg = await gw.store.get_message(id)
    assert msg is not None
    return msg


async def until_status(gw: Any, id: int, wanted: set[str]) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while (msg := await message(gw, id))["status"] not in wanted:
            await asyncio.sleep(0.05)
    return msg


# -- binds ------------------------------------------------------------------------------


async def test_bind_modes_submit_gsm_and_unbind(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    for mode in ("transmitter", "receiver", "transceiver"):
        client = await clients(gw.smpp.port)
        resp = await client.bind(mode)
        assert resp.status == 0 and resp.system_id == b"omnigate"
        if mode == "receiver":  # a receiver may not submit
            pdu = smpp.make_pdu("submit_sm", client=client.smpp, source_addr="x",
                                destination_addr=TO, short_message=b"no")
            # smpplib refuses this itself; its bytes go out anyway, as a careless client's
            await asyncio.to_thread(client.smpp._socket.sendall, pdu.generate())
            assert (await client.read("submit_sm_resp")).status == c.SMPP_ESME_RINVBNDSTS
        else:
            resp = await client.submit(f"Pump {mode} @ 3 bar")
            assert resp.status == 0
            msg = await message(gw, int(resp.message_id))
            assert (msg["origin"], msg["account"], msg["to"]) == ("smpp", "acme", "+" + TO)
        unbind = await asyncio.to_thread(client.smpp.unbind)
        assert unbind.command == "unbind_resp"
    await smsc.wait_for(2)
    assert sorted(s.text for s in smsc.submits) == ["Pump transceiver @ 3 bar",
                                                    "Pump transmitter @ 3 bar"]
    assert {s.source for s in smsc.submits} == {"Alarm"}


async def test_wrong_password_is_refused_and_slowed(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    took = []
    for system_id in ("acme", "nobody"):
        client = await clients(gw.smpp.port)
        start = time.monotonic()
        with pytest.raises(smpplib.exceptions.PDUError) as err:
            await client.bind(system_id=system_id, password="wrong")
        took.append(time.monotonic() - start)
        assert err.value.args[1] == c.SMPP_ESME_RINVPASWD
    assert took[0] >= 0.2 and took[1] >= 0.4  # auth_delay, doubled for the second failure
    client = await clients(gw.smpp.port)
    assert (await client.bind()).status == 0  # the right password still binds


async def test_bind_permissions_and_max_binds(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(
        url, smsc, tmp_path, max_binds=2,
        accounts=[{"name": "other", "binds": ["receiver"], "max_binds": 1}]))
    first = await clients(gw.smpp.port)
    await first.bind("receiver", "other")
    for mode in ("receiver", "transmitter"):  # one session too many; a type not allowed
        client = await clients(gw.smpp.port)
        with pytest.raises(smpplib.exceptions.PDUError) as err:
            await client.bind(mode, "other")
        assert err.value.args[1] == c.SMPP_ESME_RBINDFAIL
    for _ in range(2):
        assert (await (await clients(gw.smpp.port)).bind()).status == 0
    client = await clients(gw.smpp.port)
    with pytest.raises(smpplib.exceptions.PDUError) as err:
        await client.bind()
    assert err.value.args[1] == c.SMPP_ESME_RBINDFAIL


async def test_address_not_allowed_is_disconnected(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path, allow=["10.0.0.0/8"]))
    client = await clients(gw.smpp.port)
    with pytest.raises(smpplib.exceptions.ConnectionError):
        await client.bind()


async def test_inactive_session_is_unbound(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path, inactivity=0.5))
    client = await clients(gw.smpp.port)
    await client.bind()
    start = time.monotonic()
    pdu = await asyncio.to_thread(client.smpp.read_pdu)
    assert pdu.command == "unbind" and 0.4 <= time.monotonic() - start < 3


# -- protocol errors ----------------------------------------------------------------------


async def test_unknown_command_gets_generic_nack_and_garbage_closes(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    client = await clients(gw.smpp.port)
    await client.bind()
    query = smpp.make_pdu("query_sm", client=client.smpp, message_id="1", source_addr="x")
    await asyncio.to_thread(client.smpp.send_pdu, query)
    nack = await client.read("generic_nack")
    assert (nack.status, nack.sequence) == (c.SMPP_ESME_RINVCMDID, query.sequence)
    assert (await client.submit("still bound")).status == 0  # the session goes on
    # garbage: a command_length no PDU can have; the server drops that connection only
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.smpp.port)
    writer.write(struct.pack(">IIII", 0xFFFFFFF0, 4, 0, 1) + b"\x00" * 32)
    async with asyncio.timeout(WAIT):
        assert await reader.read() == b""
    writer.close()
    assert (await client.submit("after garbage")).status == 0


async def test_bad_number_and_bad_fields_are_refused(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    client = await clients(gw.smpp.port)
    await client.bind("transmitter")
    assert (await client.submit(to="12")).status == c.SMPP_ESME_RINVDSTADR
    assert (await client.submit(validity_period="not a time")).status == 0x62  # RINVEXPIRY
    assert (await client.submit(esm_class=0x04)).status == 0x43  # RINVESMCLASS
    assert (await client.submit(data_coding=0x04)).status == 0x45  # 8-bit: RSUBMITFAIL
    assert smsc.submit_count == 0


# -- texts ----------------------------------------------------------------------------------


async def test_ucs2_and_long_messages_are_submitted_whole(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    client = await clients(gw.smpp.port)
    await client.bind("transmitter")
    emoji = "Larm 😀 pump"
    resp = await client.submit(emoji.encode("utf-16-be"), data_coding=c.SMPP_ENCODING_ISO10646)
    assert (await message(gw, int(resp.message_id)))["text"] == emoji
    long_text = "The quick brown fox jumps over the lazy dog. " * 8  # 360 chars: 3 parts
    parts, coding, esm = smpplib.gsm.make_parts(long_text)
    for part in parts:
        await asyncio.to_thread(client.send, part, data_coding=coding, esm_class=esm)
    resps = [await client.read("submit_sm_resp") for _ in parts]
    assert all(r.status == 0 for r in resps)
    assert len({r.message_id for r in resps}) == 1  # one message, one id for every part
    msg = await message(gw, int(resps[0].message_id))
    assert (msg["text"], msg["parts"]) == (long_text, 3)
    await smsc.wait_for(4)
    sent = sorted((s for s in smsc.submits if s.concat), key=lambda s: s.concat[2])
    assert "".join(s.text for s in sent) == long_text
    assert [s.data_coding for s in smsc.submits if not s.concat] == [8]


async def test_sar_parts_and_incomplete_parts(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path, reassembly_timeout=0.5))
    client = await clients(gw.smpp.port)
    await client.bind("transmitter")
    for seq, piece in ((2, "world"), (1, "hello ")):  # out of order, SAR TLVs
        await asyncio.to_thread(client.send, piece, sar_msg_ref_num=7, sar_total_segments=2,
                                sar_segment_seqnum=seq)
    resps = [await client.read("submit_sm_resp") for _ in range(2)]
    assert {r.message_id for r in resps} != {None} and len({r.message_id for r in resps}) == 1
    assert (await message(gw, int(resps[0].message_id)))["text"] == "hello world"
    await asyncio.to_thread(client.send, "lonely", sar_msg_ref_num=8, sar_total_segments=3,
                            sar_segment_seqnum=1)
    assert (await client.read("submit_sm_resp")).status == 0x45  # RSUBMITFAIL after 0.5 s


# -- receipts and MO -------------------------------------------------------------------------


def _tlv(pdu: Any, name: str) -> Any:
    return getattr(pdu, name, None)


async def test_receipt_comes_back_as_deliver_sm(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    client = await clients(gw.smpp.port)
    await client.bind()
    quiet = await client.submit("no receipt please")
    resp = await client.submit("Receipt please", registered_delivery=1)
    dsm = await client.read("deliver_sm")
    assert dsm.esm_class == 0x04
    assert _tlv(dsm, "receipted_message_id") in (resp.message_id, resp.message_id + b"\x00")
    assert _tlv(dsm, "message_state") == 2
    text = dsm.short_message.decode()
    assert text.startswith(f"id:{resp.message_id.decode()} sub:001 dlvrd:001 submit date:")
    assert "stat:DELIVRD err:000 text:Receipt please" in text
    assert (dsm.source_addr, dsm.destination_addr) == (TO.encode(), b"Alarm")
    assert (await until_status(gw, int(quiet.message_id), {"sent", "delivered"}))["status"] == "sent"
    await asyncio.sleep(0.3)
    assert len(client.delivered) == 1  # none for the message that did not ask


async def test_receipt_waits_for_a_receiver_and_survives_a_vanished_client(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path, response_timeout=5))
    sender = await clients(gw.smpp.port)
    await sender.bind("transmitter")
    resp = await sender.submit("held receipt", registered_delivery=1)
    await until_status(gw, int(resp.message_id), {"delivered"})
    await asyncio.sleep(0.2)  # no receiver bound: the receipt waits in the outbox
    vanishing = await clients(gw.smpp.port)
    vanishing.answer = False
    await vanishing.bind("receiver")
    first = await vanishing.read("deliver_sm")
    assert _tlv(first, "message_state") == 2
    await asyncio.to_thread(vanishing.close)  # gone without answering
    receiver = await clients(gw.smpp.port)
    await receiver.bind("receiver")
    again = await receiver.read("deliver_sm")
    assert again.short_message == first.short_message
    async with asyncio.timeout(WAIT):  # answered: gone from the outbox
        while gw.smpp.accounts["acme"].queue or await _outbox_rows(url):
            await asyncio.sleep(0.05)


async def _outbox_rows(url: str) -> int:
    from sqlalchemy import func, select

    from omnigate.api.smppoutbox import outbox
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(outbox))).scalar())
    finally:
        await engine.dispose()


async def test_mo_goes_to_the_account_short_and_long(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    client = await clients(gw.smpp.port)
    await client.bind("receiver")
    now = datetime.now(UTC)
    long_text = "Svar: " + "ja tack " * 30
    assert await gw.smpp.deliver_mo("acme", Inbound("smsc1", "+46705000001", "4600", "Hej!",
                                                    now))
    assert await gw.smpp.deliver_mo("acme", Inbound("smsc1", "+46705000001", "4600",
                                                    long_text, now))
    assert not await gw.smpp.deliver_mo("nobody", Inbound("smsc1", "+4670", "1", "x", now))
    short = await client.read("deliver_sm")
    assert (short.esm_class, short.short_message, short.source_addr) == (0, b"Hej!",
                                                                        b"46705000001")
    parts = [await client.read("deliver_sm") for _ in range(2)]
    assert all(p.esm_class == 0x40 for p in parts)
    # the text is ASCII, whose GSM 03.38 septets are its ASCII codes; each UDH is 6 octets
    assert "".join(p.short_message[6:].decode("ascii") for p in parts) == long_text


async def test_a_reply_from_the_phone_comes_back_to_the_bound_account(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    """SMPP client -> phone; the phone's answer -> inbound routing (last sender) -> deliver_sm."""
    config = gateway_config(url, smsc, tmp_path)
    gw = await gateway_factory(config)
    client = await clients(gw.smpp.port)
    await client.bind("transceiver")
    await client.submit("Are you coming?")
    await smsc.wait_for(1)
    await smsc.inject_mo("+" + smsc.submits[0].destination, "46700000000", "Yes!")
    mo = await client.read("deliver_sm")
    assert (mo.short_message, mo.source_addr) == (b"Yes!", smsc.submits[0].destination.encode())


async def test_an_inbound_rule_sends_mo_to_an_smpp_account(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    config = gateway_config(url, smsc, tmp_path)
    config.inbound.numbers = {"4612345": ["smpp:acme"], "4612346": ["smpp:nobody"]}
    gw = await gateway_factory(config)
    client = await clients(gw.smpp.port)
    await client.bind("receiver")
    await poll(lambda: gw.links["smsc1"].state is LinkState.UP)
    await smsc.inject_mo("+46705000009", "4612345", "to the application")
    mo = await client.read("deliver_sm")
    assert (mo.short_message, mo.destination_addr) == (b"to the application", b"4612345")
    await smsc.inject_mo("+46705000009", "4612346", "to nobody")
    async with asyncio.timeout(WAIT):
        while True:
            rows = await gw.store.list_inbound(status="failed")
            if rows:
                break
            await asyncio.sleep(0.05)
    assert rows[0]["targets"] == [["smpp:nobody", "no [smpp_server] account 'nobody'"]]


# -- rate -----------------------------------------------------------------------------------


async def test_over_the_account_rate_is_throttled(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path, rate=4))
    client = await clients(gw.smpp.port)
    await client.bind("transmitter")
    for i in range(10):
        await asyncio.to_thread(client.send, f"burst {i}")
    statuses = [(await client.read("submit_sm_resp")).status for _ in range(10)]
    assert statuses.count(c.SMPP_ESME_RTHROTTLED) >= 5 and statuses.count(0) >= 1
    await asyncio.sleep(0.6)  # the bucket refills
    assert (await client.submit("later")).status == 0


async def test_client_vanishing_mid_window_gets_its_receipts_on_the_next_bind(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    client = await clients(gw.smpp.port)
    await client.bind("transmitter")
    for i in range(5):  # five submits in the window, then gone before any answer
        await asyncio.to_thread(client.send, f"vanish {i}", registered_delivery=1)
    await asyncio.to_thread(client.close)
    await smsc.wait_for(5)
    receiver = await clients(gw.smpp.port)
    await receiver.bind("receiver")
    receipts = [await receiver.read("deliver_sm") for _ in range(5)]
    texts = sorted(r.short_message.decode().rsplit("text:", 1)[1] for r in receipts)
    assert texts == [f"vanish {i}" for i in range(5)]


async def test_receipts_wait_across_a_restart(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    from omnigate.gateway import Gateway

    config = gateway_config(url, smsc, tmp_path)
    first = Gateway(config)
    await first.start()
    try:
        client = await clients(first.smpp.port)
        await client.bind("transmitter")
        resp = await client.submit("before restart", registered_delivery=1)
        await until_status(first, int(resp.message_id), {"delivered"})
        async with asyncio.timeout(WAIT):  # stored in the outbox
            while await _outbox_rows(url) < 1:
                await asyncio.sleep(0.05)
    finally:
        await first.stop(grace=2.0)
    gw = await gateway_factory(config)
    receiver = await clients(gw.smpp.port)
    await receiver.bind("receiver")
    receipt = await receiver.read("deliver_sm")
    assert _tlv(receipt, "receipted_message_id").rstrip(b"\x00") == resp.message_id


async def test_tls(url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
                   tmp_path: Path) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for the TLS test (.ci/run installs it)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    gw = await gateway_factory(gateway_config(url, smsc, tmp_path, tls_cert=str(cert),
                                              tls_key=str(key)))
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    client = Client(gw.smpp.port)
    client.smpp = smpplib.client.Client("127.0.0.1", gw.smpp.port, timeout=5,
                                        ssl_context=context, allow_unknown_opt_params=True)
    await client.connect()
    try:
        await client.bind("transmitter")
        assert (await client.submit("over TLS")).status == 0
    finally:
        await asyncio.to_thread(client.close)
    await smsc.wait_for(1)
    assert smsc.submits[-1].text == "over TLS"


async def test_random_pdus_over_the_socket_leave_the_server_serving(
        url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        clients: Callable[..., Any]) -> None:
    import random

    gw = await gateway_factory(gateway_config(url, smsc, tmp_path))
    rng = random.Random(14)
    commands = [4, 5, 6, 0x15, 0x80000005, 0x80000000, 3, 0x103, 0x21, 0x7FFFFFFF]
    bind = smpp.make_pdu("bind_transceiver", client=Client(0).smpp, system_id="acme",
                         password=PASSWORD).generate()
    for _ in range(20):  # bound, then a burst of random PDUs and bytes, then gone
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.smpp.port)
        frames = [bind] if rng.random() < 0.7 else []
        for _ in range(rng.randrange(1, 8)):
            body = rng.randbytes(rng.randrange(0, 120))
            frames.append(struct.pack(">IIII", 16 + len(body), rng.choice(commands),
                                      0, rng.randrange(1, 1 << 31)) + body)
        writer.write(b"".join(frames) + rng.randbytes(rng.randrange(0, 20)))
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(0.3):
                await reader.read(1 << 16)
        writer.close()
    client = await clients(gw.smpp.port)
    await client.bind()
    assert (await client.submit("still serving")).status == 0
