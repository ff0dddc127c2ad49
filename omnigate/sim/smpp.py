"""An SMPP 3.4 SMSC simulator: an independent peer for users, tests and benchmarks.

Like Kannel's `test/fakesmsc.c`, it ships with the product. It accepts binds,
answers `submit_sm`, records what it received, sends delivery receipts and MO
messages (`deliver_sm`), and injects faults on demand (throttling, permanent
errors, dropped connections, slow or missing responses).

It is deliberately *not* built on omnigate's own SMPP codec: cold-path PDUs
(binds, MO `deliver_sm`, `generic_nack`) go through smpplib's codec, and the
two hot-path PDUs (`submit_sm` in, `submit_sm_resp` and receipt `deliver_sm`
out) use the small hand-written codec below, because smpplib costs about
100 µs to parse one `submit_sm` and 150 µs to generate one `deliver_sm` —
more than the gateway's whole per-message budget. The hand-written codec is
checked against smpplib's in `tests/sim/test_smpp_sim.py`.

The simulator is strict where a real SMSC might be lenient, so that it catches
our mistakes: over-long C-octet strings, malformed validity periods, a UDH
longer than the user data, or `short_message` and `message_payload` together
are all refused with the matching SMPP status.

Faults (plain attributes, changeable at run time):

- `throttle_every=N`: every Nth valid `submit_sm` (counted over the whole
  simulator) is answered `ESME_RTHROTTLED`. Checked before `fail_every`.
- `fail_every=N`: every Nth valid `submit_sm` is answered `fail_status`,
  by default `ESME_RINVDSTADR`, a permanent error (`ESME_RSYSERR`, 0x08, makes
  it a temporary one: an SMSC in trouble).
- `drop_after=N`: counted per connection: once a connection has received N
  `submit_sm`, they are answered and the connection is closed; PDUs that
  arrived behind the Nth one are left unanswered. A new connection gets N more.
- `response_delay=S`: every `submit_sm_resp` is sent S seconds late. Binds
  and `enquire_link` are answered at once, so a slow SMSC does not also look
  like a dead link.
- `no_response=True`: `submit_sm` is recorded but never answered.

Throttled and failed submits are not recorded; `submit_count` counts what
the SMSC accepted (including those it accepted silently under `no_response`).
What every simulator shares (these options, the record, the receipt queue,
the command line) is in `omnigate.sim.base`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from struct import Struct
from typing import TYPE_CHECKING, Any, NamedTuple

from smpplib import smpp as smpplib_smpp

from omnigate.sim.base import FAULTS as FAULTS  # re-exported: it was defined here
from omnigate.sim.base import (
    SimConnection,
    Simulator,
    SimulatorError,
    SimulatorOptions,
    add_common_arguments,
    cli_main,
    common_options,
    serve,
)
from omnigate.sim.base import parse_hostport as parse_hostport  # re-exported likewise

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("omnigate.sim.smpp")

# --------------------------------------------------------------------------
# Wire constants (SMPP 3.4 §5.1.2.1 command ids, §5.1.3 command status)
# --------------------------------------------------------------------------

BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
GENERIC_NACK = 0x80000000
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM_RESP = 0x80000005
UNBIND_RESP = 0x80000006
ENQUIRE_LINK_RESP = 0x80000015
RESPONSE_BIT = 0x80000000

ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RINVPRTFLG = 0x06
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RINVSERTYP = 0x15
ESME_RINVESMCLASS = 0x43
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RINVOPTPARSTREAM = 0xC0
ESME_ROPTPARNOTALLWD = 0xC1
ESME_RINVPARLEN = 0xC2

TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_MESSAGE_STATE = 0x0427

ESM_UDHI = 0x40  # SMPP 3.4 §5.2.12, bit 6: short_message starts with a UDH
ESM_DELIVERY_RECEIPT = 0x04  # §5.2.12, bits 5-2 = 0001: SMSC delivery receipt

# Limits, enforced where the bytes arrive.
# SMPP 3.4 sets no PDU maximum; the largest legal submit_sm carries a
# message_payload TLV of up to 65535 octets (§5.3.2.32, 16-bit length) plus
# well under 512 octets of mandatory fields and other TLVs.
MAX_PDU_LENGTH = 65536 + 512
HEADER_LENGTH = 16  # §3.2: command_length, command_id, command_status, sequence_number
MAX_SM_LENGTH = 254  # §5.2.21 short_message: 0-254 octets
# C-octet string maxima including the NUL, §4.4.1 submit_sm table.
MAX_SERVICE_TYPE = 6
MAX_ADDR = 21
MAX_TIME = 17
MAX_SEQUENCE = 0x7FFFFFFF  # §3.2: sequence_number 0x00000001-0x7FFFFFFF

# Receipt `stat:` values and message_state TLV values (SMPP 3.4 Appendix B, §5.2.28).
MESSAGE_STATES = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}

SMSC_SYSTEM_ID = "omnigate-sim"
SMPP_VERSION_34 = 0x34

_HEADER = Struct(">IIII")
_TLV_HEADER = Struct(">HH")

BIND_MODES = {
    BIND_RECEIVER: "receiver",
    BIND_TRANSMITTER: "transmitter",
    BIND_TRANSCEIVER: "transceiver",
}
_CAN_SEND = frozenset({"transmitter", "transceiver"})
_CAN_RECEIVE = frozenset({"receiver", "transceiver"})


class PduError(ValueError):
    """A PDU body the simulator refuses; `status` is the SMPP command_status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


# --------------------------------------------------------------------------
# Text: GSM 03.38 (3GPP TS 23.038 §6.2.1), data_coding, UDH
# --------------------------------------------------------------------------

# The default alphabet, one character per septet value 0x00-0x7F.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table, reached by the escape septet 0x1B (23.038 §6.2.1.1).
GSM_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_GSM_ESCAPE = 0x1B
_BAD = "\ufffd"
# Unpacked septets decode by one str.translate when no escape is present;
# octets >= 0x80 are not septets and show as U+FFFD.
_GSM_TRANSLATE = {i: c for i, c in enumerate(GSM_BASIC)} | {i: _BAD for i in range(0x80, 0x100)}
_GSM_ENCODE: dict[str, bytes] = {c: bytes([i]) for i, c in enumerate(GSM_BASIC) if i != _GSM_ESCAPE}
_GSM_ENCODE.update({c: bytes([_GSM_ESCAPE, i]) for i, c in GSM_EXTENSION.items()})


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 7-bit septets (one per octet, as SMPP carries them) to text.

    An escape at the very end of the data (a part split inside an escape
    sequence) shows as U+FFFD, so a segmenting bug is visible in the text.
    An escape before a septet with no extension character shows the basic
    character, as 23.038 §6.2.1.1 asks of a receiving entity.
    """
    if _GSM_ESCAPE not in data:
        return data.decode("latin-1").translate(_GSM_TRANSLATE)
    out = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == _GSM_ESCAPE:
            if i + 1 == n:
                out.append(_BAD)
                break
            nb = data[i + 1]
            out.append(GSM_EXTENSION.get(nb) or (GSM_BASIC[nb] if nb < 0x80 else _BAD))
            i += 2
            continue
        out.append(GSM_BASIC[b] if b < 0x80 else _BAD)
        i += 1
    return "".join(out)


def gsm_encode(text: str) -> bytes | None:
    """Text to unpacked GSM 7-bit septets, or None if a character is not in GSM 03.38."""
    try:
        return b"".join([_GSM_ENCODE[c] for c in text])
    except KeyError:
        return None


_GSM_SAMPLE = bytes(i for i in range(0x80) if i != _GSM_ESCAPE) + b"".join(
    bytes([_GSM_ESCAPE, i]) for i in GSM_EXTENSION
)
_gsm_impl: Callable[[bytes], str] | None = None


def _gsm_decoder() -> Callable[[bytes], str]:
    """omnigate.sms.gsm.decode when it exists and agrees with our table, else ours.

    Resolved on first use (the module is written in parallel). The check on
    the whole table keeps the simulator an independent oracle: if the two
    ever disagree we say so and keep our own table.
    """
    global _gsm_impl
    if _gsm_impl is None:
        _gsm_impl = gsm_decode
        try:
            from omnigate.sms.gsm import decode as impl  # type: ignore[import-not-found]
        except ImportError:
            return _gsm_impl
        try:
            agrees = impl(_GSM_SAMPLE) == gsm_decode(_GSM_SAMPLE)
        except Exception:  # any signature or behaviour mismatch: keep ours
            agrees = False
        if agrees:
            _gsm_impl = impl
        else:
            log.warning("omnigate.sms.gsm.decode disagrees with GSM 03.38; using the local table")
    return _gsm_impl


CHARSET_GSM = "gsm"
CHARSET_UCS2 = "utf-16-be"
CHARSET_BINARY = "binary"


def _charset_of(dc: int) -> str:
    """SMPP 3.4 §5.2.19 values 0x00-0x0F, then the 23.038 §4 coding groups."""
    smpp_specific = {
        0x00: CHARSET_GSM,
        0x01: "ascii",
        0x03: "latin-1",
        0x06: "iso8859-5",
        0x07: "iso8859-8",
        0x08: CHARSET_UCS2,
    }
    if dc < 0x10:
        return smpp_specific.get(dc, CHARSET_BINARY)
    if dc < 0x80:  # general data coding / automatic deletion groups
        if dc & 0x20:  # compressed
            return CHARSET_BINARY
        return (CHARSET_GSM, CHARSET_BINARY, CHARSET_UCS2, CHARSET_BINARY)[(dc >> 2) & 3]
    if dc < 0xC0:  # reserved groups
        return CHARSET_BINARY
    if dc < 0xE0:  # message waiting indication, GSM alphabet
        return CHARSET_GSM
    if dc < 0xF0:  # message waiting indication, UCS-2
        return CHARSET_UCS2
    return CHARSET_BINARY if dc & 0x04 else CHARSET_GSM  # data coding / message class


CHARSETS = tuple(_charset_of(dc) for dc in range(256))


def decode_text(data_coding: int, data: bytes) -> str:
    """User data (without UDH) to text; 8-bit data shows as hex."""
    charset = CHARSETS[data_coding & 0xFF]
    if charset is CHARSET_GSM:
        return _gsm_decoder()(data)
    if charset is CHARSET_BINARY:
        return data.hex()
    return data.decode(charset, "replace")


def udh_concat(udh: bytes) -> tuple[int, int, int] | None:
    """(ref, total, seq) from the concatenation IE of a UDH (UDHL included).

    IE 0x00 has an 8-bit reference, IE 0x08 a 16-bit one (3GPP TS 23.040
    §9.2.3.24.1 and §9.2.3.24.8).
    """
    i, n = 1, len(udh)
    while i + 2 <= n:
        iei, iel = udh[i], udh[i + 1]
        v = udh[i + 2 : i + 2 + iel]
        if len(v) < iel:
            return None
        if iei == 0x00 and iel == 3:
            return (v[0], v[1], v[2])
        if iei == 0x08 and iel == 4:
            return ((v[0] << 8) | v[1], v[2], v[3])
        i += 2 + iel
    return None


# Part sizes for MO splitting (23.040 §9.2.3.24.1 + 23.038): a single GSM
# message holds 160 septets, a part 153 (7 go to a 6-octet UDH with fill);
# UCS-2 holds 140 octets, a part 134.
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 140, 134


def split_mo(text: str, ref: int) -> tuple[int, int, list[bytes]]:
    """(data_coding, esm_class, short_messages) for an MO text.

    GSM 03.38 when every character fits, otherwise UCS-2. Long texts get an
    8-bit-reference concatenation UDH; a part never ends inside an escape
    sequence or a surrogate pair.
    """
    gsm = gsm_encode(text)
    if gsm is not None:
        if len(gsm) <= GSM_SINGLE:
            return 0x00, 0x00, [gsm]
        chunks, chunk = [], b""
        for c in text:  # whole characters, so no part ends inside an escape
            septets = _GSM_ENCODE[c]
            if len(chunk) + len(septets) > GSM_PART:
                chunks.append(chunk)
                chunk = b""
            chunk += septets
        chunks.append(chunk)
        coding = 0x00
    else:
        ucs2 = text.encode("utf-16-be")
        if len(ucs2) <= UCS2_SINGLE:
            return 0x08, 0x00, [ucs2]
        chunks, start = [], 0
        while start < len(ucs2):
            end = min(start + UCS2_PART, len(ucs2))
            if end < len(ucs2) and 0xD8 <= ucs2[end - 2] <= 0xDB:  # high surrogate last
                end -= 2
            chunks.append(ucs2[start:end])
            start = end
        coding = 0x08
    if len(chunks) > 255:
        raise ValueError(f"MO text needs {len(chunks)} parts; a UDH counts at most 255")
    total = len(chunks)
    return (
        coding,
        ESM_UDHI,
        [
            bytes((5, 0x00, 3, ref & 0xFF, total, seq)) + chunk
            for seq, chunk in enumerate(chunks, start=1)
        ],
    )


# --------------------------------------------------------------------------
# Hand-written codec for the hot path (checked against smpplib in the tests)
# --------------------------------------------------------------------------


class SubmitSm(NamedTuple):
    """The fields of one submit_sm body, strings as raw bytes (like smpplib)."""

    service_type: bytes
    source_addr_ton: int
    source_addr_npi: int
    source_addr: bytes
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: bytes
    esm_class: int
    protocol_id: int
    priority_flag: int
    schedule_delivery_time: bytes
    validity_period: bytes
    registered_delivery: int
    replace_if_present_flag: int
    data_coding: int
    sm_default_msg_id: int
    short_message: bytes
    message_payload: bytes | None
    sar_msg_ref_num: int | None
    sar_total_segments: int | None
    sar_segment_seqnum: int | None


_new_submit_sm = tuple.__new__  # skips NamedTuple's keyword-handling __new__


def _string_error(buf: bytes, pos: int, end: int, limit: int, status: int, name: str) -> None:
    """Raise the precise error for a C-octet string at pos that is not NUL-ended in time."""
    if buf.find(0, pos, end) < 0:
        raise PduError(ESME_RINVCMDLEN, f"{name} is not NUL-terminated inside the PDU")
    raise PduError(status, f"{name} is longer than {limit - 1} octets")


def _time_error(value: bytes, status: int, name: str) -> None:
    """Raise unless value is empty or YYMMDDhhmmsstnnp (SMPP 3.4 §7.1.1)."""
    if len(value) != 16 or value[15] not in b"+-R" or not value[:15].isdigit():
        raise PduError(status, f"{name} {value!r} is not YYMMDDhhmmsstnnp")


def parse_submit_sm(buf: bytes, pos: int, end: int) -> SubmitSm:
    """Decode the submit_sm body buf[pos:end] (SMPP 3.4 §4.4.1); raise PduError if bad.

    Written flat for speed (one find per C-octet string); the error paths
    re-examine the bytes to say precisely what is wrong.
    """
    find = buf.find
    nul = find(0, pos, end)
    if nul < 0 or nul - pos >= MAX_SERVICE_TYPE:
        _string_error(buf, pos, end, MAX_SERVICE_TYPE, ESME_RINVSERTYP, "service_type")
    service_type = buf[pos:nul]
    pos = nul + 3
    if pos > end:
        raise PduError(ESME_RINVCMDLEN, "PDU ends inside source_addr_ton/npi")
    source_ton = buf[nul + 1]
    source_npi = buf[nul + 2]
    nul = find(0, pos, end)
    if nul < 0 or nul - pos >= MAX_ADDR:
        _string_error(buf, pos, end, MAX_ADDR, ESME_RINVSRCADR, "source_addr")
    source = buf[pos:nul]
    pos = nul + 3
    if pos > end:
        raise PduError(ESME_RINVCMDLEN, "PDU ends inside dest_addr_ton/npi")
    dest_ton = buf[nul + 1]
    dest_npi = buf[nul + 2]
    nul = find(0, pos, end)
    if nul <= pos or nul - pos >= MAX_ADDR:
        if nul == pos:
            raise PduError(ESME_RINVDSTADR, "destination_addr is empty")
        _string_error(buf, pos, end, MAX_ADDR, ESME_RINVDSTADR, "destination_addr")
    destination = buf[pos:nul]
    pos = nul + 4
    if pos > end:
        raise PduError(ESME_RINVCMDLEN, "PDU ends inside esm_class/protocol_id/priority_flag")
    esm_class = buf[nul + 1]
    protocol_id = buf[nul + 2]
    priority = buf[nul + 3]
    if priority > 3:
        raise PduError(ESME_RINVPRTFLG, f"priority_flag {priority} is not 0-3")
    nul = find(0, pos, end)
    if nul < 0 or nul - pos >= MAX_TIME:
        _string_error(buf, pos, end, MAX_TIME, ESME_RINVSCHED, "schedule_delivery_time")
    schedule = buf[pos:nul]
    if schedule:
        _time_error(schedule, ESME_RINVSCHED, "schedule_delivery_time")
    pos = nul + 1
    nul = find(0, pos, end)
    if nul < 0 or nul - pos >= MAX_TIME:
        _string_error(buf, pos, end, MAX_TIME, ESME_RINVEXPIRY, "validity_period")
    validity = buf[pos:nul]
    if validity:
        _time_error(validity, ESME_RINVEXPIRY, "validity_period")
    pos = nul + 6
    if pos > end:
        raise PduError(ESME_RINVCMDLEN, "PDU ends inside registered_delivery..sm_length")
    registered, replace, coding, default_id, sm_length = buf[nul + 1 : pos]
    if sm_length > MAX_SM_LENGTH:
        raise PduError(ESME_RINVMSGLEN, f"sm_length {sm_length} is over {MAX_SM_LENGTH}")
    short_message = buf[pos : pos + sm_length]
    pos += sm_length
    if pos > end:
        raise PduError(ESME_RINVMSGLEN, f"sm_length {sm_length} runs past the PDU")
    if pos == end:  # no TLVs: the common case
        return _new_submit_sm(
            SubmitSm,
            (
                service_type, source_ton, source_npi, source, dest_ton, dest_npi, destination,
                esm_class, protocol_id, priority, schedule, validity, registered, replace,
                coding, default_id, short_message, None, None, None, None,
            ),
        )  # fmt: skip
    payload = sar_ref = sar_total = sar_seq = None
    while pos < end:
        if pos + 4 > end:
            raise PduError(ESME_RINVOPTPARSTREAM, "truncated TLV header")
        tag, length = _TLV_HEADER.unpack_from(buf, pos)
        pos += 4
        if pos + length > end:
            raise PduError(ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04x} runs past the PDU")
        if tag == TAG_MESSAGE_PAYLOAD:
            payload = buf[pos : pos + length]
        elif tag == TAG_SAR_MSG_REF_NUM:
            if length != 2:
                raise PduError(ESME_RINVPARLEN, "sar_msg_ref_num is not 2 octets")
            sar_ref = (buf[pos] << 8) | buf[pos + 1]
        elif tag == TAG_SAR_TOTAL_SEGMENTS:
            if length != 1:
                raise PduError(ESME_RINVPARLEN, "sar_total_segments is not 1 octet")
            sar_total = buf[pos]
        elif tag == TAG_SAR_SEGMENT_SEQNUM:
            if length != 1:
                raise PduError(ESME_RINVPARLEN, "sar_segment_seqnum is not 1 octet")
            sar_seq = buf[pos]
        pos += length
    if payload is not None and short_message:
        # §5.3.2.32: message_payload and short_message are mutually exclusive.
        raise PduError(ESME_ROPTPARNOTALLWD, "both short_message and message_payload are set")
    return _new_submit_sm(
        SubmitSm,
        (
            service_type, source_ton, source_npi, source, dest_ton, dest_npi, destination,
            esm_class, protocol_id, priority, schedule, validity, registered, replace,
            coding, default_id, short_message, payload, sar_ref, sar_total, sar_seq,
        ),
    )  # fmt: skip


def encode_header_only(command_id: int, status: int, sequence: int) -> bytes:
    """A PDU with no body: error responses (§4.4.2), unbind_resp, enquire_link_resp."""
    return _HEADER.pack(HEADER_LENGTH, command_id, status, sequence)


def encode_submit_sm_resp(sequence: int, message_id: bytes) -> bytes:
    """submit_sm_resp with status 0 and message_id as a C-octet string (§4.4.2)."""
    return _HEADER.pack(HEADER_LENGTH + len(message_id) + 1, SUBMIT_SM_RESP, 0, sequence) + (
        message_id + b"\0"
    )


def encode_deliver_sm(
    sequence: int,
    *,
    source_ton: int,
    source_npi: int,
    source: bytes,
    dest_ton: int,
    dest_npi: int,
    destination: bytes,
    esm_class: int,
    data_coding: int,
    short_message: bytes,
    tlvs: bytes = b"",
) -> bytes:
    """deliver_sm (§4.6.1) with empty service_type, times and default flags."""
    body = b"".join(
        (
            b"\0",
            bytes((source_ton, source_npi)),
            source,
            b"\0",
            bytes((dest_ton, dest_npi)),
            destination,
            b"\0",
            bytes((esm_class, 0, 0)),  # protocol_id, priority_flag
            b"\0\0",  # schedule_delivery_time, validity_period: must be NULL in deliver_sm
            bytes((0, 0, data_coding, 0, len(short_message))),
            short_message,
            tlvs,
        )
    )
    return _HEADER.pack(HEADER_LENGTH + len(body), DELIVER_SM, 0, sequence) + body


def receipt_tlvs(message_id: bytes, state: int) -> bytes:
    """receipted_message_id (C-octet string) and message_state TLVs (§5.3.2.12, §5.3.2.35)."""
    return b"".join(
        (
            _TLV_HEADER.pack(TAG_RECEIPTED_MESSAGE_ID, len(message_id) + 1),
            message_id,
            b"\0",
            _TLV_HEADER.pack(TAG_MESSAGE_STATE, 1),
            bytes((state,)),
        )
    )


class _CodecClient:
    """What smpplib's PDU classes need of a 'client': a sequence source."""

    sequence = 0

    def next_sequence(self) -> int:
        return 0


_CODEC_CLIENT = _CodecClient()


def _smpplib_pdu(command: str, sequence: int, **fields: Any) -> bytes:
    """Generate a cold-path PDU with smpplib's codec."""
    pdu = smpplib_smpp.make_pdu(command, client=_CODEC_CLIENT, **fields)
    pdu.sequence = sequence
    return pdu.generate()


# --------------------------------------------------------------------------
# What was received
# --------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class RecordedSubmit:
    """One submit_sm as received.

    `short_message` is the user data as it came, UDH included; when the
    message came in the message_payload TLV, `short_message` holds the
    payload and `message_payload` is True. Text is decoded only on demand.
    """

    message_id: str
    source: str
    source_ton: int
    source_npi: int
    destination: str
    dest_ton: int
    dest_npi: int
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    udh: bytes | None
    sar: tuple[int, int, int] | None
    message_payload: bool
    validity_period: str
    received_at: float
    system_id: str

    @property
    def user_data(self) -> bytes:
        """short_message without the UDH."""
        return self.short_message[len(self.udh) :] if self.udh else self.short_message

    @property
    def text(self) -> str:
        return decode_text(self.data_coding, self.user_data)

    @property
    def concat(self) -> tuple[int, int, int] | None:
        """(ref, total, seq) from the UDH concatenation IE, else from the SAR TLVs."""
        if self.udh:
            found = udh_concat(self.udh)
            if found is not None:
                return found
        return self.sar

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape used by the record file and the control endpoint."""
        return {
            "message_id": self.message_id,
            "system_id": self.system_id,
            "from": self.source,
            "to": self.destination,
            "text": self.text,
            "coding": self.data_coding,
            "esm_class": self.esm_class,
            "registered_delivery": self.registered_delivery,
            "udh": self.udh.hex() if self.udh else None,
            "concat": self.concat,
            "message_payload": self.message_payload,
            "validity_period": self.validity_period,
            "at": self.received_at,
        }


# --------------------------------------------------------------------------
# One ESME connection
# --------------------------------------------------------------------------


class _Connection(SimConnection[RecordedSubmit]):
    """The SMSC side of one TCP connection: parse, answer, record."""

    sim: SmscSimulator

    def __init__(self, sim: SmscSimulator) -> None:
        super().__init__(sim)
        self.mode: str | None = None  # None (open) | transmitter | receiver | transceiver
        self.system_id = ""
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[int]] = {}  # our deliver_sm -> resp status

    @property
    def receives_for(self) -> str | None:
        return self.system_id if self.mode in _CAN_RECEIVE else None

    # asyncio.Protocol ------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.mode is not None:
            log.info("SMSC-SIM[%s] %s %r disconnected", self.peer, self.mode, self.system_id)
        self.mode = None
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(SimulatorError("connection lost before deliver_sm_resp"))
        self._waiting.clear()

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
        sim = self.sim
        out: list[bytes] = []
        late: list[bytes] = []
        now = time.time()
        n = len(data)
        pos = 0
        close = False
        while n - pos >= HEADER_LENGTH:
            length, command_id, status, seq = _HEADER.unpack_from(data, pos)
            if length < HEADER_LENGTH or length > MAX_PDU_LENGTH:
                # No way to find the next PDU boundary: nack and close (§5.1.3).
                log.info("SMSC-SIM[%s] command_length %d is invalid; closing", self.peer, length)
                out.append(encode_header_only(GENERIC_NACK, ESME_RINVCMDLEN, seq))
                close = True
                pos = n
                break
            end = pos + length
            if end > n:
                break
            if command_id == SUBMIT_SM:
                close = self._on_submit(data, pos + HEADER_LENGTH, end, seq, now, out, late)
                pos = end
                if close:
                    break
                continue
            start, pos = pos, end
            if command_id in (DELIVER_SM_RESP, GENERIC_NACK):
                fut = self._waiting.pop(seq, None)
                if fut is not None and not fut.done():
                    fut.set_result(status if command_id == DELIVER_SM_RESP else status or -1)
            elif command_id == ENQUIRE_LINK:
                out.append(encode_header_only(ENQUIRE_LINK_RESP, ESME_ROK, seq))
            elif command_id in BIND_MODES:
                out.append(self._on_bind(command_id, data[start:end], seq))
            elif command_id == UNBIND:
                out.append(encode_header_only(UNBIND_RESP, ESME_ROK, seq))
                log.info("SMSC-SIM[%s] %s %r unbound", self.peer, self.mode, self.system_id)
                self.mode = None
                close = True
                break
            elif command_id & RESPONSE_BIT:
                pass  # enquire_link_resp and responses we did not ask for
            else:
                out.append(_smpplib_pdu("generic_nack", seq, status=ESME_RINVCMDID))
        self._buf = data[pos:] if pos < n and not close else b""
        if sim._waiters:
            sim._wake_waiters()
        transport = self.transport
        if transport is None or self._closed:
            return
        if sim._dlr_due <= sim._loop.time():  # dlr_delay 0: no need to wait a tick
            sim._send_due_dlrs((self, out))
        if out:
            transport.write(b"".join(out) if len(out) > 1 else out[0])
        if late:
            sim._loop.call_later(sim.response_delay, self._write_late, b"".join(late))
        if close:
            self._closed = True
            transport.close()

    # handlers --------------------------------------------------------------

    def _on_submit(
        self,
        data: bytes,
        start: int,
        end: int,
        seq: int,
        now: float,
        out: list[bytes],
        late: list[bytes],
    ) -> bool:
        """Answer one submit_sm into out/late; True if the connection must close now."""
        sim = self.sim
        if self.mode not in _CAN_SEND:
            out.append(encode_header_only(SUBMIT_SM_RESP, ESME_RINVBNDSTS, seq))
            return False
        self.submits += 1
        replies = late if sim.response_delay > 0 else out
        try:
            (
                _, source_ton, source_npi, source_raw, dest_ton, dest_npi, destination, esm_class,
                _, _, _, validity, registered, _, coding, _, user_data, payload, sar_ref,
                sar_total, sar_seq,
            ) = parse_submit_sm(data, start, end)  # fmt: skip
            if payload is not None:
                user_data = payload
            if esm_class & ESM_UDHI and (not user_data or user_data[0] + 1 > len(user_data)):
                raise PduError(ESME_RINVESMCLASS, "UDHI set but no complete UDH")
        except PduError as e:
            sim.rejected_count += 1
            log.debug("SMSC-SIM[%s] submit_sm refused 0x%02x: %s", self.peer, e.status, e)
            if not sim.no_response:
                replies.append(encode_header_only(SUBMIT_SM_RESP, e.status, seq))
            return self._drop_due()
        sim.received_count += 1
        count = sim.received_count
        if sim.throttle_every and count % sim.throttle_every == 0:
            sim.throttled_count += 1
            if not sim.no_response:
                replies.append(encode_header_only(SUBMIT_SM_RESP, ESME_RTHROTTLED, seq))
            return self._drop_due()
        if sim.fail_every and count % sim.fail_every == 0:
            sim.failed_count += 1
            if not sim.no_response:
                replies.append(encode_header_only(SUBMIT_SM_RESP, sim.fail_status, seq))
            return self._drop_due()
        mid = b"%x" % sim._next_id
        sim._next_id += 1
        source = sim._source_cache.get(source_raw)
        if source is None:
            source = sim._intern_source(source_raw)
        rec = RecordedSubmit(
            mid.decode(), source, source_ton, source_npi, destination.decode("latin-1"),
            dest_ton, dest_npi, coding, esm_class, registered, user_data,
            user_data[: user_data[0] + 1] if esm_class & ESM_UDHI else None,
            (sar_ref, sar_total, sar_seq)
            if sar_ref is not None and sar_total is not None and sar_seq is not None
            else None,
            payload is not None, validity.decode("latin-1") if validity else "", now,
            self.system_id,
        )  # fmt: skip
        sim._accept(rec, self)
        if not sim.no_response:
            replies.append(encode_submit_sm_resp(seq, mid))
        return self._drop_due() if sim.drop_after else False

    def _on_bind(self, command_id: int, pdu: bytes, seq: int) -> bytes:
        sim = self.sim
        mode = BIND_MODES[command_id]
        resp = f"bind_{mode}_resp"
        try:
            req = smpplib_smpp.parse_pdu(pdu, client=_CODEC_CLIENT, allow_unknown_opt_params=True)
            system_id = (req.system_id or b"").decode("latin-1")
            password = (req.password or b"").decode("latin-1")
        except Exception as e:  # smpplib raises assorted errors on malformed bodies
            log.info("SMSC-SIM[%s] malformed bind_%s: %s", self.peer, mode, e)
            return _smpplib_pdu(resp, seq, status=ESME_RBINDFAIL)
        if self.mode is not None:
            status, why = ESME_RALYBND, "already bound"
        elif sim.system_id is not None and system_id != sim.system_id:
            status, why = ESME_RINVSYSID, "invalid system_id"
        elif sim.password is not None and password != sim.password:
            status, why = ESME_RINVPASWD, "invalid password"
        else:
            status, why = ESME_ROK, ""
        if status:
            log.info("SMSC-SIM[%s] bind_%s %r refused: %s", self.peer, mode, system_id, why)
            return _smpplib_pdu(resp, seq, status=status)
        self.mode, self.system_id = mode, system_id
        log.info("SMSC-SIM[%s] bound as %s %r", self.peer, mode, system_id)
        if mode in _CAN_RECEIVE:
            sim._loop.call_soon(sim._flush_held, self)
        return _smpplib_pdu(
            resp, seq, system_id=SMSC_SYSTEM_ID, sc_interface_version=SMPP_VERSION_34
        )

    # sending ---------------------------------------------------------------

    def next_sequence(self) -> int:
        self._seq = self._seq + 1 if self._seq < MAX_SEQUENCE else 1
        return self._seq

    def expect_response(self, seq: int) -> asyncio.Future[int]:
        fut = self.sim._loop.create_future()
        self._waiting[seq] = fut
        return fut

    def _write_late(self, data: bytes) -> None:
        self.write(data)


# --------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------

_SOURCE_CACHE_MAX = 10_000


class SmscSimulator(Simulator[RecordedSubmit, _Connection]):
    """An SMPP 3.4 SMSC on a real TCP port. See the module docstring for faults."""

    NAME = "SMSC simulator"
    LOG_PREFIX = "SMSC-SIM"
    UNITS = "submit_sm"
    DLR_STATUSES = MESSAGE_STATES
    DLR_STATUS_DEFAULT = "DELIVRD"
    log = log

    def __init__(
        self, *, system_id: str | None = None, fail_status: int = ESME_RINVDSTADR,
        **options: Unpack[SimulatorOptions]
    ) -> None:
        super().__init__(**options)
        self.system_id = system_id
        self.fail_status = fail_status
        # Message ids stay unique across restarts (omnigate stores carrier
        # references to match receipts): a counter seeded from the clock,
        # with room for 2**20 messages per second of downtime.
        self._next_id = int(time.time()) << 20
        self._source_cache: dict[bytes, str] = {}
        self._stamp_minute = -1
        self._stamp = b""

    def _connection(self) -> _Connection:
        return _Connection(self)

    @property
    def bound(self) -> int:
        return sum(1 for c in self._connections if c.mode is not None)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "bound": self.bound}

    # recording -------------------------------------------------------------

    def _intern_source(self, raw: bytes) -> str:
        if len(self._source_cache) >= _SOURCE_CACHE_MAX:
            self._source_cache.clear()
        text = self._source_cache[raw] = raw.decode("latin-1")
        return text

    def _join(self, parts: list[RecordedSubmit]) -> str:
        """GSM parts join as text, since a septet stream cannot split an
        escape across parts; other codings are joined as octets first, so a
        surrogate pair split across UCS-2 parts still decodes."""
        coding = parts[0].data_coding
        if CHARSETS[coding & 0xFF] is CHARSET_GSM:
            return "".join(p.text for p in parts)
        return decode_text(coding, b"".join(p.user_data for p in parts))

    # delivery receipts -----------------------------------------------------

    def _wants_dlr(self, rec: RecordedSubmit) -> bool:
        rd = rec.registered_delivery & 0x03  # §5.2.17 bits 1-0
        return rd == 1 or (rd == 2 and self.dlr_status != "DELIVRD")

    def _owner(self, rec: RecordedSubmit) -> str:
        return rec.system_id

    def _dlr_frames(self, conn: _Connection, recs: list[RecordedSubmit]) -> list[bytes]:
        status = self.dlr_status.encode()
        done = self._minute_stamp(time.time())
        return [self._receipt_pdu(conn, rec, status, done) for rec in recs]

    def _minute_stamp(self, t: float) -> bytes:
        minute = int(t // 60)
        if minute != self._stamp_minute:
            self._stamp_minute = minute
            self._stamp = time.strftime("%y%m%d%H%M", time.gmtime(t)).encode()
        return self._stamp

    def _receipt_pdu(
        self, conn: _Connection, rec: RecordedSubmit, status: bytes, done: bytes
    ) -> bytes:
        """The receipt text of SMPP 3.4 Appendix B, dates in UTC, plus its TLVs."""
        mid = rec.message_id.encode()
        dlvrd, err = (b"001", b"000") if status == b"DELIVRD" else (b"000", b"001")
        # 80 octets hold at least 20 characters in any coding; a cut escape or
        # surrogate pair lands beyond them.
        text = decode_text(rec.data_coding, rec.user_data[:80])[:20]
        sm = b"id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s" % (
            mid, dlvrd, self._minute_stamp(rec.received_at), done, status, err,
            _RECEIPT_UNSAFE.sub("?", text).encode("ascii"),
        )  # fmt: skip
        return encode_deliver_sm(
            conn.next_sequence(),
            source_ton=rec.dest_ton,
            source_npi=rec.dest_npi,
            source=rec.destination.encode("latin-1"),
            dest_ton=rec.source_ton,
            dest_npi=rec.source_npi,
            destination=rec.source.encode("latin-1"),
            esm_class=ESM_DELIVERY_RECEIPT,
            data_coding=0x00,
            short_message=sm[:MAX_SM_LENGTH],
            tlvs=receipt_tlvs(mid, MESSAGE_STATES[status.decode()]),
        )

    # MO --------------------------------------------------------------------

    async def inject_mo(
        self, source: str, destination: str, text: str, *, timeout: float = 5.0,
        only: Sequence[int] | None = None, ref: int | None = None,
    ) -> None:
        """Send an MO text as deliver_sm (esm_class 0) to a bound receiver or transceiver.

        Receivers take turns. Returns once every part is acknowledged with
        deliver_sm_resp; raises SimulatorError if none is bound, a part is
        refused, or the ESME does not answer within `timeout` seconds. `only`
        sends just these parts of a long text (1-based), in that order: parts
        out of order, resent or lost, as networks deliver them; `ref` fixes the
        concatenation reference (to send the rest of a message later).
        """
        conn = self._mo_target("no receiver or transceiver is bound to take an MO")
        coding, esm_class, parts = split_mo(text, next(self._mo_ref) if ref is None else ref)
        if only is not None:
            parts = [parts[i - 1] for i in only]
        pdus, futures = [], []
        for sm in parts:
            seq = conn.next_sequence()
            pdus.append(
                _smpplib_pdu(
                    "deliver_sm",
                    seq,
                    source_addr_ton=1 if source.startswith("+") else 0,
                    source_addr_npi=1,
                    source_addr=source.lstrip("+"),
                    dest_addr_ton=0,
                    dest_addr_npi=1,
                    destination_addr=destination,
                    esm_class=esm_class,
                    data_coding=coding,
                    short_message=sm,
                )
            )
            futures.append(conn.expect_response(seq))
        conn.write(b"".join(pdus))
        self.mo_count += len(parts)
        statuses = await self._await_mo(futures, timeout, "no deliver_sm_resp")
        refused = [s for s in statuses if s]
        if refused:
            raise SimulatorError(f"ESME refused the MO with status 0x{refused[0] & 0xFFFFFFFF:02x}")


# Characters that do not read the same in ASCII and GSM 03.38 become '?' in receipt text.
_RECEIPT_UNSAFE = re.compile("[^A-Za-z0-9 !\"#%&'()*+,\\-./:;<=>?]")


# --------------------------------------------------------------------------
# Command line: `omnigate sim smpp ...` (wired in by omnigate/cli.py)
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(
        parser, SmscSimulator, port=2775, peers="ESMEs", logins="binds", unit="submit_sm",
        response="submit_sm_resp", throttle="ESME_RTHROTTLED",
        fail="ESME_RINVDSTADR (permanent)",
        dlr="send delivery receipts when registered_delivery asks",
        dlr_delay="seconds between submit_sm_resp and the receipt",
        dlr_status="receipt stat: value (default DELIVRD)",
    )
    parser.add_argument("--system-id", help="accept binds only with this system_id")


def simulator_from_args(args: argparse.Namespace) -> SmscSimulator:
    return SmscSimulator(system_id=args.system_id, **common_options(args))


async def run(args: argparse.Namespace) -> None:
    """Entry point for `omnigate sim smpp`; runs until cancelled."""
    await serve(simulator_from_args(args), args.control)


def main(argv: list[str] | None = None) -> None:
    """`python -m omnigate.sim.smpp`, for use without the omnigate command."""
    cli_main("python -m omnigate.sim.smpp", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    # Run the importable module rather than this __main__ copy, so that its
    # classes are the ones omnigate.sim.control imports.
    from omnigate.sim.smpp import main as _main

    _main()
