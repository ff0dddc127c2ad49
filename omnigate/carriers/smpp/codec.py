"""SMPP 3.4 wire format: pure functions and tables, no state, no I/O.

Every PDU omnigate sends or reads is packed here by hand, for two reasons:

- The hot path. One submit_sm goes out and one submit_sm_resp and (usually) one
  deliver_sm receipt come back per part, 5,000-10,000 times a second. smpplib's
  generic codec walks a parameter table with getattr/setattr and finds TLV names
  by linear search. Measured with timeit on the 2-core dev machine: submit_sm
  encode 1-2.5 us here vs 70-130 us in smpplib, submit_sm_resp decode ~1 us vs
  ~12-17 us, deliver_sm receipt decode and parse ~6 us vs ~70-125 us (parse alone).
- Independence. The tests use smpplib's codec as a second implementation:
  every encoder here is checked byte for byte against it and every decoder reads
  PDUs it generated; the link is tested end to end against the SMSC simulator
  (`omnigate.sim.smpp`), whose codec was written apart from this one (smpplib
  for binds and MO). Two codecs that meet on the wire find each other's
  mistakes; one codec on both sides would not.

Limits are named where they come from: SMPP 3.4 §5.2 gives each C-octet string
its maximum size *including* the terminating NUL.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

from omnigate.model import FailureKind, Status
from omnigate.sms.coding import Coding
from omnigate.sms.segment import parse_concat

# --- limits --------------------------------------------------------------------------

HEADER_LENGTH = 16  # command_length, command_id, command_status, sequence_number (§3.2)
# The largest PDU we accept from an SMSC. SMPP 3.4 sets no maximum; the largest thing
# that can legitimately travel is a message_payload (§5.3.2.32, 16-bit length) holding a
# whole concatenated message: at most 255 segments (TS 23.040 §9.2.3.24.1, one-octet
# count) x 140 octets = 35,700 octets plus < 500 octets of mandatory fields. 64 KiB
# covers that with room; anything longer is a broken or hostile peer, and the length
# field is all we must trust before buffering, so it is checked as soon as it arrives.
MAX_PDU_LENGTH = 64 * 1024

# C-octet string maxima of §5.2, NUL included; we hold the text, so one less.
SYSTEM_ID_MAX = 16 - 1  # §5.2.1
PASSWORD_MAX = 9 - 1  # §5.2.2
SYSTEM_TYPE_MAX = 13 - 1  # §5.2.3
ADDRESS_RANGE_MAX = 41 - 1  # §5.2.7
SERVICE_TYPE_MAX = 6 - 1  # §5.2.11
ADDR_MAX = 21 - 1  # §5.2.8 source_addr, destination_addr
TIME_MAX = 17 - 1  # §5.2.15/16 schedule_delivery_time, validity_period: 16 chars or empty
MESSAGE_ID_MAX = 65 - 1  # §5.2.23
SHORT_MESSAGE_MAX = 254  # §5.2.22 sm_length 0..254; longer user data goes in message_payload
MESSAGE_PAYLOAD_MAX = 0xFFFF  # §5.3.2.32: the TLV length field is 16 bits

INTERFACE_VERSION = 0x34  # §5.2.4

# --- command ids (§5.1.2.1) ----------------------------------------------------------

GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_RECEIVER_RESP = 0x80000001
BIND_TRANSMITTER = 0x00000002
BIND_TRANSMITTER_RESP = 0x80000002
QUERY_SM = 0x00000003
QUERY_SM_RESP = 0x80000003
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
REPLACE_SM = 0x00000007
REPLACE_SM_RESP = 0x80000007
CANCEL_SM = 0x00000008
CANCEL_SM_RESP = 0x80000008
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
OUTBIND = 0x0000000B
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
SUBMIT_MULTI = 0x00000021
SUBMIT_MULTI_RESP = 0x80000021
ALERT_NOTIFICATION = 0x00000102
DATA_SM = 0x00000103
DATA_SM_RESP = 0x80000103

RESPONSE_BIT = 0x80000000

COMMAND_NAMES: dict[int, str] = {
    GENERIC_NACK: "generic_nack",
    BIND_RECEIVER: "bind_receiver", BIND_RECEIVER_RESP: "bind_receiver_resp",
    BIND_TRANSMITTER: "bind_transmitter", BIND_TRANSMITTER_RESP: "bind_transmitter_resp",
    QUERY_SM: "query_sm", QUERY_SM_RESP: "query_sm_resp",
    SUBMIT_SM: "submit_sm", SUBMIT_SM_RESP: "submit_sm_resp",
    DELIVER_SM: "deliver_sm", DELIVER_SM_RESP: "deliver_sm_resp",
    UNBIND: "unbind", UNBIND_RESP: "unbind_resp",
    REPLACE_SM: "replace_sm", REPLACE_SM_RESP: "replace_sm_resp",
    CANCEL_SM: "cancel_sm", CANCEL_SM_RESP: "cancel_sm_resp",
    BIND_TRANSCEIVER: "bind_transceiver", BIND_TRANSCEIVER_RESP: "bind_transceiver_resp",
    OUTBIND: "outbind",
    ENQUIRE_LINK: "enquire_link", ENQUIRE_LINK_RESP: "enquire_link_resp",
    SUBMIT_MULTI: "submit_multi", SUBMIT_MULTI_RESP: "submit_multi_resp",
    ALERT_NOTIFICATION: "alert_notification",
    DATA_SM: "data_sm", DATA_SM_RESP: "data_sm_resp",
}

BIND_RESPONSE = {BIND_RECEIVER: BIND_RECEIVER_RESP, BIND_TRANSMITTER: BIND_TRANSMITTER_RESP,
                 BIND_TRANSCEIVER: BIND_TRANSCEIVER_RESP}
# Requests that have no response PDU at all (§4.1.7 outbind, §4.12 alert_notification):
# they are never answered, not even with generic_nack.
NO_RESPONSE = frozenset({OUTBIND, ALERT_NOTIFICATION})


def command_name(command_id: int) -> str:
    return COMMAND_NAMES.get(command_id) or f"command 0x{command_id:08X}"


# --- TLV tags (§5.3.2) -------------------------------------------------------------

TAG_SC_INTERFACE_VERSION = 0x0210
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_MESSAGE_STATE = 0x0427

# --- esm_class (§5.2.12) -------------------------------------------------------------

ESM_UDHI = 0x40  # GSM feature: short_message/message_payload starts with a UDH
ESM_TYPE_MASK = 0x3C  # message type bits 5-2
ESM_SMSC_RECEIPT = 0x04
ESM_SME_DELIVERY_ACK = 0x08
ESM_SME_MANUAL_ACK = 0x10
ESM_INTERMEDIATE = 0x20

# --- command_status (§5.1.3) and what each means for a part ------------------------
#
# One table: code -> (name, kind). The kind says what the dispatcher should do with a
# part that got this answer (STYLE §3; Kannel smsc_smpp.c
# smpp_status_to_smscconn_failure_reason). The rule we follow: THROTTLED when the SMSC
# asks us to slow down; TEMPORARY when the fault is the SMSC's or the session's and the
# same PDU may succeed later or elsewhere; PERMANENT when the PDU itself is wrong, so
# sending it again, anywhere, gets the same answer.

T, H, P = FailureKind.TEMPORARY, FailureKind.THROTTLED, FailureKind.PERMANENT

ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RALYBND = 0x05
ESME_RINVPRTFLG = 0x06
ESME_RINVESMCLASS = 0x43
ESME_RINVSYSTYP = 0x53
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RMSGQFUL = 0x14
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64
ESME_RINVOPTPARSTREAM = 0xC0
ESME_RINVPARLEN = 0xC2
ESME_RUNKNOWNERR = 0xFF

STATUS: dict[int, tuple[str, FailureKind]] = {
    0x01: ("ESME_RINVMSGLEN", P),  # message length invalid: same bytes, same answer
    0x02: ("ESME_RINVCMDLEN", P),  # our PDU's length is wrong: same bytes, same answer
    0x03: ("ESME_RINVCMDID", P),  # SMSC does not know submit_sm: nothing will change
    # "Incorrect BIND status": the session is confused (SMSC thinks we are a receiver,
    # or mid-rebind). The part is fine; after a reconnect it goes through.
    0x04: ("ESME_RINVBNDSTS", T),
    0x05: ("ESME_RALYBND", T),  # as above: a session fault, not the part's
    0x06: ("ESME_RINVPRTFLG", P),
    0x07: ("ESME_RINVREGDLVFLG", P),
    0x08: ("ESME_RSYSERR", T),  # SMSC system error: theirs, transient by definition
    0x0A: ("ESME_RINVSRCADR", P),
    0x0B: ("ESME_RINVDSTADR", P),
    0x0C: ("ESME_RINVMSGID", P),
    0x0D: ("ESME_RBINDFAIL", P),  # bind answers; the link treats them as "link down"
    0x0E: ("ESME_RINVPASWD", P),
    0x0F: ("ESME_RINVSYSID", P),
    0x11: ("ESME_RCANCELFAIL", P),
    0x13: ("ESME_RREPLACEFAIL", P),
    0x14: ("ESME_RMSGQFUL", H),  # "message queue full": the SMSC asks us to slow down
    0x15: ("ESME_RINVSERTYP", P),
    0x33: ("ESME_RINVNUMDESTS", P),
    0x34: ("ESME_RINVDLNAME", P),
    0x40: ("ESME_RINVDESTFLAG", P),
    0x42: ("ESME_RINVSUBREP", P),
    0x43: ("ESME_RINVESMCLASS", P),
    0x44: ("ESME_RCNTSUBDL", P),
    # "submit_sm failed" says nothing about why; SMSCs use it for routing and
    # capacity trouble downstream. Retrying is bounded by retry.max_attempts, while
    # calling it permanent would fail a message that may well go through later.
    0x45: ("ESME_RSUBMITFAIL", T),
    0x48: ("ESME_RINVSRCTON", P),
    0x49: ("ESME_RINVSRCNPI", P),
    0x50: ("ESME_RINVDSTTON", P),
    0x51: ("ESME_RINVDSTNPI", P),
    0x53: ("ESME_RINVSYSTYP", P),
    0x54: ("ESME_RINVREPFLAG", P),
    0x55: ("ESME_RINVNUMMSGS", P),
    0x58: ("ESME_RTHROTTLED", H),  # exceeded the allowed rate
    0x61: ("ESME_RINVSCHED", P),
    0x62: ("ESME_RINVEXPIRY", P),
    0x63: ("ESME_RINVDFTMSGID", P),
    0x64: ("ESME_RX_T_APPN", T),  # "ESME Receiver Temporary App Error": temporary by name
    0x65: ("ESME_RX_P_APPN", P),  # ... Permanent App Error
    0x66: ("ESME_RX_R_APPN", P),  # ... Reject Message
    0x67: ("ESME_RQUERYFAIL", P),
    0xC0: ("ESME_RINVOPTPARSTREAM", P),
    0xC1: ("ESME_ROPTPARNOTALLWD", P),
    0xC2: ("ESME_RINVPARLEN", P),
    0xC3: ("ESME_RMISSINGOPTPARAM", P),
    0xC4: ("ESME_RINVOPTPARAMVAL", P),
    0xFE: ("ESME_RDELIVERYFAILURE", P),
    # "Unknown error": nothing says the part is at fault; bounded retries are cheaper
    # than losing a message to a carrier's hiccup.
    0xFF: ("ESME_RUNKNOWNERR", T),
}
# Codes not in the table (reserved ones and the SMSC vendor range 0x400-0x4FF, §5.1.3)
# are TEMPORARY for the same reason as ESME_RUNKNOWNERR: "nothing lost" weighs more than
# a few wasted retries, which retry.max_attempts bounds anyway.
UNKNOWN_STATUS_KIND = T

del T, H, P


def status_name(status: int) -> str:
    entry = STATUS.get(status)
    return entry[0] if entry else ("ESME_ROK" if status == 0 else f"0x{status:08X}")


def status_kind(status: int) -> FailureKind:
    entry = STATUS.get(status)
    return entry[1] if entry else UNKNOWN_STATUS_KIND


def status_text(status: int) -> str:
    """'ESME_RTHROTTLED (0x00000058)', the form every log line and failure reason uses."""
    return f"{status_name(status)} (0x{status:08X})"


class CodecError(ValueError):
    """A PDU body that cannot be read; `status` is the command_status to answer with."""

    def __init__(self, reason: str, status: int = ESME_RINVCMDLEN) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# --- packing -------------------------------------------------------------------------

HEADER = struct.Struct(">IIII")
_pack_header = HEADER.pack
_SAR = struct.Struct(">HHHHHBHHB")  # three TLVs, in the order smpplib writes them
_TLV = struct.Struct(">HH")
_U8 = struct.Struct(">B")


def pdu(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    """Header + body."""
    return _pack_header(HEADER_LENGTH + len(body), command_id, status, sequence) + body


def cstring(value: str, limit: int, what: str) -> bytes:
    """A C-octet string of at most `limit` octets before the NUL (§3.1).

    Latin-1, as smpplib and Kannel write them: addresses are digits or the few
    alphanumeric characters TS 23.040 §9.1.2.5 allows, all of which Latin-1 holds.
    """
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value!r} has characters an SMPP string cannot carry") from None
    if len(raw) > limit or b"\x00" in raw:
        raise ValueError(f"{what} {value!r} is longer than {limit} octets (SMPP 3.4 §5.2)")
    return raw + b"\x00"


def address(ton: int, npi: int, addr: str, what: str = "address") -> bytes:
    """The three fields addr_ton, addr_npi, addr (§5.2.5-5.2.8) as one block."""
    if not (0 <= ton <= 255 and 0 <= npi <= 255):
        raise ValueError(f"{what} TON/NPI {ton}/{npi} out of range")
    return bytes((ton, npi)) + cstring(addr, ADDR_MAX, what)


def bind(command_id: int, sequence: int, system_id: str, password: str,
         system_type: str = "", addr_ton: int = 0, addr_npi: int = 0,
         address_range: str = "") -> bytes:
    """bind_transmitter / bind_receiver / bind_transceiver (§4.1)."""
    if command_id not in BIND_RESPONSE:
        raise ValueError(f"{command_name(command_id)} is not a bind")
    body = b"".join((
        cstring(system_id, SYSTEM_ID_MAX, "system_id"),
        cstring(password, PASSWORD_MAX, "password"),
        cstring(system_type, SYSTEM_TYPE_MAX, "system_type"),
        bytes((INTERFACE_VERSION, addr_ton, addr_npi)),
        cstring(address_range, ADDRESS_RANGE_MAX, "address_range"),
    ))
    return pdu(command_id, sequence, body)


def submit_sm_body(source: bytes, destination: bytes, short_message: bytes, *,
                   esm_class: int = 0, registered_delivery: int = 0, data_coding: int = 0,
                   validity_period: bytes = b"", tlvs: bytes = b"") -> bytes:
    """submit_sm body (§4.4.1) from pre-built parts; the hot path.

    `source` and `destination` come from `address()` (callers cache the source block
    per sender), `validity_period` from `smpp_time()` (16 octets or empty). Fields we
    never set are written as their defaults: service_type "", protocol_id 0,
    priority_flag 0, schedule_delivery_time "" (immediate), replace_if_present_flag 0,
    sm_default_msg_id 0.
    """
    n = len(short_message)
    if n > SHORT_MESSAGE_MAX:
        raise ValueError(f"short_message is {n} octets, at most {SHORT_MESSAGE_MAX}"
                         " (SMPP 3.4 §5.2.22); use message_payload")
    return b"".join((
        b"\x00", source, destination, bytes((esm_class, 0, 0, 0)), validity_period,
        bytes((0, registered_delivery, 0, data_coding, 0, n)), short_message, tlvs,
    ))


def submit_sm(sequence: int, source: bytes, destination: bytes, short_message: bytes,
              **fields: int | bytes) -> bytes:
    """A whole submit_sm PDU; see `submit_sm_body`."""
    return pdu(SUBMIT_SM, sequence, submit_sm_body(source, destination, short_message,
                                                   **fields))  # type: ignore[arg-type]


def sar_tlvs(ref: int, total: int, seq: int) -> bytes:
    """sar_msg_ref_num, sar_total_segments, sar_segment_seqnum (§5.3.2.22-24)."""
    return _SAR.pack(TAG_SAR_MSG_REF_NUM, 2, ref & 0xFFFF, TAG_SAR_TOTAL_SEGMENTS, 1, total,
                     TAG_SAR_SEGMENT_SEQNUM, 1, seq)


def payload_tlv(data: bytes) -> bytes:
    """message_payload (§5.3.2.32); short_message must then be empty."""
    if len(data) > MESSAGE_PAYLOAD_MAX:
        raise ValueError(f"message_payload is {len(data)} octets, at most {MESSAGE_PAYLOAD_MAX}")
    return _TLV.pack(TAG_MESSAGE_PAYLOAD, len(data)) + data


def smpp_time(epoch: float) -> bytes:
    """Absolute time format of §7.1.1, in UTC: 'YYMMDDhhmmsstnnp' with t=0, nn=00, p='+'."""
    t = time.gmtime(epoch)
    return b"%02d%02d%02d%02d%02d%02d000+" % (t.tm_year % 100, t.tm_mon, t.tm_mday,
                                               t.tm_hour, t.tm_min, t.tm_sec)


def deliver_sm_resp(sequence: int, status: int = 0) -> bytes:
    """deliver_sm_resp (§4.6.2): message_id is unused and set to NULL."""
    return _pack_header(HEADER_LENGTH + 1, DELIVER_SM_RESP, status, sequence) + b"\x00"


def bind_resp(command_id: int, sequence: int, system_id: str, status: int = 0) -> bytes:
    """bind_*_resp (§4.1.2) to a bind `command_id`; with sc_interface_version 3.4
    (§5.3.2.25) on success. On error the body is empty, as §4.1 allows and smpplib reads."""
    if status:
        return pdu(BIND_RESPONSE[command_id], sequence, b"", status)
    body = cstring(system_id, SYSTEM_ID_MAX, "system_id") + _TLV.pack(
        TAG_SC_INTERFACE_VERSION, 1) + bytes((INTERFACE_VERSION,))
    return pdu(BIND_RESPONSE[command_id], sequence, body)


def submit_sm_resp(sequence: int, message_id: str, status: int = 0) -> bytes:
    """submit_sm_resp (§4.4.2); an error answer carries no body (§4.4.2 note)."""
    if status:
        return _pack_header(HEADER_LENGTH, SUBMIT_SM_RESP, status, sequence)
    mid = message_id.encode("latin-1") + b"\x00"
    return _pack_header(HEADER_LENGTH + len(mid), SUBMIT_SM_RESP, 0, sequence) + mid


def tlv(tag: int, value: bytes) -> bytes:
    return _TLV.pack(tag, len(value)) + value


def header_only(command_id: int, sequence: int, status: int = 0) -> bytes:
    """enquire_link(_resp), unbind(_resp), generic_nack: a header and nothing else."""
    return _pack_header(HEADER_LENGTH, command_id, status, sequence)


# --- unpacking -----------------------------------------------------------------------


def read_tlvs(body: bytes, pos: int) -> dict[int, bytes]:
    """TLVs from `pos` to the end (§3.2.4.1); the last of a repeated tag wins.

    Up to three octets of trailing padding are ignored: too short to be a TLV, and some
    SMSCs pad. A TLV whose length runs past the end is an error.
    """
    tlvs: dict[int, bytes] = {}
    n = len(body)
    while pos + 4 <= n:
        tag, length = _TLV.unpack_from(body, pos)
        pos += 4
        if pos + length > n:
            raise CodecError(f"TLV 0x{tag:04X} claims {length} octets, {n - pos} remain",
                             ESME_RINVOPTPARSTREAM)
        tlvs[tag] = body[pos:pos + length]
        pos += length
    return tlvs


def message_id(body: bytes) -> str:
    """message_id of submit_sm_resp (§4.4.2). Read leniently: the part has gone out, and
    an SMSC that forgets the NUL or sends no body on error must not lose its answer."""
    end = body.find(b"\x00")
    raw = body if end < 0 else body[:end]
    return raw[:MESSAGE_ID_MAX].decode("latin-1")


def bind_resp_system_id(body: bytes) -> str:
    """system_id of a bind_*_resp (§4.1.2); may be absent when the bind failed."""
    return message_id(body[: SYSTEM_ID_MAX + 1])


class BindRequest(NamedTuple):
    system_id: str
    password: str
    system_type: str
    interface_version: int


def decode_bind(body: bytes) -> BindRequest:
    """A bind_* body (§4.1.1) as the SMPP server reads it; CodecError with the status to
    answer (ESME_RINVSYSID, ESME_RINVPASWD for over-long fields, §5.2.1-2)."""
    fields: list[str] = []
    pos = 0
    for limit, what, status in ((SYSTEM_ID_MAX, "system_id", ESME_RINVSYSID),
                                (PASSWORD_MAX, "password", ESME_RINVPASWD),
                                (SYSTEM_TYPE_MAX, "system_type", ESME_RINVSYSTYP)):
        e = body.find(b"\x00", pos, pos + limit + 1)
        if e < 0:
            raise CodecError(f"bind {what} missing or longer than {limit} octets", status)
        fields.append(body[pos:e].decode("latin-1"))
        pos = e + 1
    if pos >= len(body):
        raise CodecError("bind body ends before interface_version")
    return BindRequest(fields[0], fields[1], fields[2], body[pos])


def parse_smpp_time(raw: bytes, now: float) -> float | None:
    """schedule_delivery_time / validity_period (§7.1) -> epoch seconds; None when empty.

    Absolute 'YYMMDDhhmmsstnnp': nn quarter hours from UTC, p '+' or '-'. Relative
    'YYMMDDhhmmss000R': that long from `now` (years of 365 days, months of 30, as SMSCs
    count). ValueError for anything else.
    """
    if not raw:
        return None
    text = raw.decode("latin-1")
    if len(text) != 16 or not text[:15].isdigit() or text[15] not in "+-R":
        raise ValueError(f"{text!r} is not an SMPP time (SMPP 3.4 §7.1)")
    yy, mo, dd, hh, mi, ss = (int(text[i:i + 2]) for i in range(0, 12, 2))
    if text[15] == "R":
        return now + ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss
    offset = int(text[13:15]) * 900 * (1 if text[15] == "+" else -1)
    local = datetime(2000 + yy, mo, dd, hh, mi, ss, int(text[12]) * 100_000, tzinfo=UTC)
    return local.timestamp() - offset


class DeliverSm(NamedTuple):
    """A decoded deliver_sm (§4.6.1) or submit_sm (§4.4.1: the same fields in the same
    order); strings are left as bytes until someone needs them.
    A NamedTuple built with tuple.__new__: a third of a dataclass's cost, per receipt."""

    service_type: bytes
    source_ton: int
    source_npi: int
    source_addr: bytes
    dest_ton: int
    dest_npi: int
    destination_addr: bytes
    esm_class: int
    protocol_id: int
    priority_flag: int
    registered_delivery: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    schedule_delivery_time: bytes = b""  # §5.2.15; deliver_sm leaves it empty
    validity_period: bytes = b""  # §5.2.16; likewise

    @property
    def is_receipt(self) -> bool:
        """A delivery receipt or acknowledgement rather than an MO (§5.2.12 message type),
        or, from SMSCs that leave esm_class 0, a receipted_message_id TLV."""
        return bool(self.esm_class & ESM_TYPE_MASK) or TAG_RECEIPTED_MESSAGE_ID in self.tlvs

    @property
    def user_data(self) -> bytes:
        """short_message, or message_payload when short_message is empty (§5.3.2.32)."""
        return self.short_message or self.tlvs.get(TAG_MESSAGE_PAYLOAD, b"")

    def split_udh(self) -> tuple[bytes, tuple[int, int, int] | None]:
        """(user data without UDH, (ref, total, seq) of a concatenated part or None), from
        a UDH when esm_class says there is one (§5.2.12 UDHI), else from the SAR TLVs
        (§5.3.2.22-24). A UDH longer than the data is an error (ESME_RINVMSGLEN)."""
        data = self.user_data
        if self.esm_class & ESM_UDHI and data:
            end = 1 + data[0]
            if end > len(data):
                raise CodecError(f"UDH of {data[0]} octets is longer than the user data",
                                 ESME_RINVMSGLEN)
            return data[end:], parse_concat(data[:end])
        tlvs = self.tlvs
        ref = tlvs.get(TAG_SAR_MSG_REF_NUM)
        total = tlvs.get(TAG_SAR_TOTAL_SEGMENTS)
        seq = tlvs.get(TAG_SAR_SEGMENT_SEQNUM)
        if ref and total and seq:
            return data, (int.from_bytes(ref, "big"), total[0], seq[0])
        return data, None


def _cstring_error(body: bytes, pos: int, limit: int, what: str) -> None:
    if body.find(b"\x00", pos) < 0:
        raise CodecError(f"{what} has no terminating NUL")
    raise CodecError(f"{what} is longer than {limit} octets (SMPP 3.4 §5.2)")


def decode_deliver_sm(body: bytes, what: str = "deliver_sm") -> DeliverSm:
    """deliver_sm body -> DeliverSm; raises CodecError naming the status to answer.
    The SMPP server reads submit_sm with it too (`decode_submit_sm`).

    Written flat, one find() per C-octet string: a receipt comes back for every part
    sent, so this is as hot as submit_sm."""
    find = body.find
    n = len(body)
    e = find(b"\x00", 0, SERVICE_TYPE_MAX + 1)
    if e < 0:
        _cstring_error(body, 0, SERVICE_TYPE_MAX, "service_type")
    service_type = body[:e]
    pos = e + 3
    if pos >= n:
        raise CodecError(f"{what} body ends inside its mandatory fields")
    source_ton, source_npi = body[e + 1], body[e + 2]
    e = find(b"\x00", pos, pos + ADDR_MAX + 1)
    if e < 0:
        _cstring_error(body, pos, ADDR_MAX, "source_addr")
    source = body[pos:e]
    pos = e + 3
    if pos >= n:
        raise CodecError(f"{what} body ends inside its mandatory fields")
    dest_ton, dest_npi = body[e + 1], body[e + 2]
    e = find(b"\x00", pos, pos + ADDR_MAX + 1)
    if e < 0:
        _cstring_error(body, pos, ADDR_MAX, "destination_addr")
    dest = body[pos:e]
    pos = e + 4
    if pos >= n:
        raise CodecError(f"{what} body ends inside its mandatory fields")
    esm_class, protocol_id, priority = body[e + 1], body[e + 2], body[e + 3]
    e = find(b"\x00", pos, pos + TIME_MAX + 1)
    if e < 0:
        _cstring_error(body, pos, TIME_MAX, "schedule_delivery_time")
    schedule = body[pos:e]
    pos = e + 1
    e = find(b"\x00", pos, pos + TIME_MAX + 1)
    if e < 0:
        _cstring_error(body, pos, TIME_MAX, "validity_period")
    validity = body[pos:e]
    pos = e + 1
    if pos + 5 > n:
        raise CodecError(f"{what} body ends inside its mandatory fields")
    registered, data_coding, sm_length = body[pos], body[pos + 2], body[pos + 4]
    pos += 5
    end = pos + sm_length
    if sm_length > SHORT_MESSAGE_MAX or end > n:
        raise CodecError(f"sm_length {sm_length} runs past the PDU", ESME_RINVMSGLEN)
    tlvs = read_tlvs(body, end) if end < n else {}
    return _new_tuple(DeliverSm, (service_type, source_ton, source_npi, source, dest_ton,
                                  dest_npi, dest, esm_class, protocol_id, priority, registered,
                                  data_coding, body[pos:end], tlvs, schedule, validity))


def decode_submit_sm(body: bytes) -> DeliverSm:
    """submit_sm body (§4.4.1) -> DeliverSm: the layout is deliver_sm's."""
    return decode_deliver_sm(body, "submit_sm")


_new_tuple = tuple.__new__  # skips NamedTuple's keyword-handling __new__


# --- data_coding of received messages ------------------------------------------------


def inbound_coding(data_coding: int) -> Coding | None:
    """The alphabet of a received short message, or None for 8-bit data / compressed.

    Values 0-15 are SMPP's own (§5.2.19): 0 SMSC default (GSM 03.38 on every SMSC we
    know), 1 IA5/ASCII (a subset of Latin-1), 3 Latin-1, 8 UCS-2. From 0x10 up the
    octet is a TS 23.038 §4 DCS: groups 00xx/01xx carry the alphabet in bits 3-2
    (compressed, bit 5, cannot be read), 1100/1101 are GSM7 and 1110 UCS-2 (message
    waiting), 1111 is GSM7 or 8-bit by bit 2.
    """
    if data_coding < 0x10:
        return _SMPP_CODING.get(data_coding)
    group = data_coding >> 4
    if group < 0x8:  # 00xx, 01xx general data coding
        if data_coding & 0x20:
            return None
        return _DCS_ALPHABET[(data_coding >> 2) & 3]
    if group in (0xC, 0xD):
        return Coding.GSM7
    if group == 0xE:
        return Coding.UCS2
    if group == 0xF:
        return None if data_coding & 0x04 else Coding.GSM7
    return None


_SMPP_CODING = {0: Coding.GSM7, 1: Coding.LATIN1, 3: Coding.LATIN1, 8: Coding.UCS2}
_DCS_ALPHABET = (Coding.GSM7, None, Coding.UCS2, None)


def outbound_coding(coding: Coding, flash: bool) -> int:
    """data_coding for a part. Flash is message class 0 (TS 23.038 §4: 0x10 GSM7, 0x18
    UCS-2). Latin-1 has no DCS with a class, so a Latin-1 part goes without flash."""
    if flash:
        if coding == Coding.GSM7:
            return 0x10
        if coding == Coding.UCS2:
            return 0x18
    return int(coding)


# --- delivery receipts ---------------------------------------------------------------

# message_state (§5.2.28) -> (stat word of Appendix B, status). ENROUTE and ACCEPTED
# are not final for us: the message has not reached the phone.
MESSAGE_STATES: dict[int, tuple[str, Status | None]] = {
    1: ("ENROUTE", None),
    2: ("DELIVRD", Status.DELIVERED),
    3: ("EXPIRED", Status.EXPIRED),
    4: ("DELETED", Status.UNDELIVERED),
    5: ("UNDELIV", Status.UNDELIVERED),
    6: ("ACCEPTD", None),
    7: ("UNKNOWN", Status.UNDELIVERED),
    8: ("REJECTD", Status.UNDELIVERED),
}
STAT_WORDS: dict[str, Status | None] = {word: st for word, st in MESSAGE_STATES.values()}

# Our final statuses -> (message_state, stat word) of the receipts the SMPP server sends.
RECEIPT_STATES: dict[Status, tuple[int, str]] = {
    Status.DELIVERED: (2, "DELIVRD"),
    Status.EXPIRED: (3, "EXPIRED"),
    Status.UNDELIVERED: (5, "UNDELIV"),
    Status.FAILED: (5, "UNDELIV"),  # never reached the phone, from the client's view
    Status.REJECTED: (8, "REJECTD"),
}


def receipt_text(message_id: str, status: Status, submitted: float, done: float,
                 text: str, error: str = "000", delivered: int | None = None) -> str:
    """The receipt text of SMPP 3.4 Appendix B: 'id:IIII sub:SSS dlvrd:DDD submit
    date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...' (dates in UTC,
    `text` the first 20 characters of the message, as Appendix B says)."""
    stat = RECEIPT_STATES[status][1]
    if delivered is None:
        delivered = 1 if status is Status.DELIVERED else 0
    return (f"id:{message_id} sub:001 dlvrd:{delivered:03d} submit date:{_minute(submitted)} "
            f"done date:{_minute(done)} stat:{stat} err:{error[:3]:0>3} text:{text[:20]}")


def _minute(epoch: float) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(epoch))


def receipt_tlvs(message_id: str, status: Status) -> bytes:
    """receipted_message_id (§5.3.2.12) and message_state (§5.3.2.35) of a receipt."""
    return (tlv(TAG_RECEIPTED_MESSAGE_ID, message_id.encode("latin-1") + b"\x00")
            + tlv(TAG_MESSAGE_STATE, bytes((RECEIPT_STATES[status][0],))))


@dataclass(slots=True)
class Receipt:
    """What a delivery receipt says. `status` None: not final (ENROUTE, ACCEPTD) or a
    stat word we do not know; `stat` keeps the word for the log either way."""

    message_id: str
    status: Status | None
    stat: str
    error: str | None = None
    done_at: datetime | None = None


def _text_field(text: str, lower: str, key: str) -> str | None:
    """The value after `key` (lower case, colon included) up to the next space. The
    first occurrence wins: Appendix B puts the free 'text:' field last, so whatever a
    message says cannot shadow the real fields before it."""
    i = lower.find(key)
    if i < 0:
        return None
    i += len(key)
    j = text.find(" ", i)
    return text[i:j] if j >= 0 else text[i:]


_DELIVERED = Status.DELIVERED  # Enum class attribute access is slow in CPython 3.11


def parse_receipt(dsm: DeliverSm) -> Receipt | None:
    """The receipt in a deliver_sm, or None when it names no message.

    The TLVs receipted_message_id (§5.3.2.12) and message_state (§5.3.2.35) are
    preferred; otherwise the text of SMPP 3.4 Appendix B, 'id:... sub:... dlvrd:...
    submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...', read
    key by key because SMSCs vary its case, field order and date precision. Dates carry
    no zone in Appendix B; we read them as UTC.
    """
    text = (dsm.short_message or dsm.tlvs.get(TAG_MESSAGE_PAYLOAD, b"")).decode("latin-1")
    lower = text.lower()
    tlvs = dsm.tlvs
    raw_id = tlvs.get(TAG_RECEIPTED_MESSAGE_ID)
    if raw_id is not None:
        end = raw_id.find(b"\x00")
        mid = (raw_id if end < 0 else raw_id[:end]).decode("latin-1")
    else:
        mid = (_text_field(text, lower, "id:") if lower.startswith("id:")
               else _text_field(text, lower, " id:")) or ""
    if not mid:
        return None
    state = tlvs.get(TAG_MESSAGE_STATE)
    if state is not None and len(state) == 1 and state[0] in MESSAGE_STATES:
        stat, status = MESSAGE_STATES[state[0]]
    else:
        stat = (_text_field(text, lower, "stat:") or "").upper()
        status = STAT_WORDS.get(stat)
    err = _text_field(text, lower, "err:")
    if tlvs and TAG_NETWORK_ERROR_CODE in tlvs:
        nec = tlvs[TAG_NETWORK_ERROR_CODE]
        code = int.from_bytes(nec[1:3], "big") if len(nec) == 3 else 0
        if code:  # §5.3.2.31: network type, 2-octet error code
            err = f"{err or '000'} net:{nec[0]}:{code}"
    error = None
    if status is not _DELIVERED or (err and err.strip("0")):
        error = f"{stat or '?'} err:{err}" if err is not None else (stat or None)
    done = _text_field(text, lower, "done date:")
    return Receipt(mid, status, stat, error, _receipt_date(done) if done else None)


@lru_cache(maxsize=64)
def _receipt_date(value: str) -> datetime | None:
    """'YYMMDDhhmm' or 'YYMMDDhhmmss' -> UTC; cached, since receipts arriving together
    share their minute."""
    if len(value) not in (10, 12) or not value.isdigit():
        return None
    try:
        return datetime(2000 + int(value[0:2]), int(value[2:4]), int(value[4:6]),
                        int(value[6:8]), int(value[8:10]), int(value[10:12] or 0), tzinfo=UTC)
    except ValueError:
        return None
