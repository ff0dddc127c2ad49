"""What a GSM modem's numbers mean: +CMS ERROR (3GPP TS 27.005 §3.2.5, with the
TS 24.011 §E.2 RP-causes and TS 23.040 §9.2.3.22 TP-FCS values it passes through),
+CME ERROR (TS 27.007 §9.2), +CREG <stat> (§7.2) and +CSQ <rssi> (§8.5).

A failed AT+CMGS is classified here once (STYLE §3): PERMANENT when the message or
its destination is at fault (it would fail again on any link), TEMPORARY when the
modem, its SIM or the radio network is (another link, or this one later, may send
it), THROTTLED for congestion.
"""

from __future__ import annotations

from omnigate.model import FailureKind

P, T, THR = FailureKind.PERMANENT, FailureKind.TEMPORARY, FailureKind.THROTTLED

# code -> (text, kind). Codes not listed: 0-127 are network causes (RP), 128-255 are
# TP-FCS values about the TPDU, 256+ are modem (ME/TA) failures; see `cms_kind`.
CMS_ERRORS: dict[int, tuple[str, FailureKind]] = {
    1: ("unassigned (unallocated) number", P),
    8: ("operator determined barring", P),
    10: ("call barred", P),
    21: ("short message transfer rejected", P),
    27: ("destination out of service", T),
    28: ("unidentified subscriber", P),
    29: ("facility rejected", P),
    30: ("unknown subscriber", P),
    38: ("network out of order", T),
    41: ("temporary failure", T),
    42: ("congestion", THR),
    47: ("resources unavailable, unspecified", T),
    50: ("requested facility not subscribed", P),
    69: ("requested facility not implemented", P),
    81: ("invalid short message transfer reference value", T),
    95: ("invalid message, unspecified", P),
    96: ("invalid mandatory information", P),
    97: ("message type non-existent or not implemented", P),
    98: ("message not compatible with short message protocol state", T),
    99: ("information element non-existent or not implemented", P),
    111: ("protocol error, unspecified", T),
    127: ("interworking, unspecified", T),
    128: ("telematic interworking not supported", P),
    129: ("short message type 0 not supported", P),
    130: ("cannot replace short message", P),
    143: ("unspecified TP-PID error", P),
    144: ("data coding scheme (alphabet) not supported", P),
    145: ("message class not supported", P),
    159: ("unspecified TP-DCS error", P),
    160: ("command cannot be actioned", P),
    161: ("command unsupported", P),
    175: ("unspecified TP-Command error", P),
    176: ("TPDU not supported", P),
    192: ("SC busy", THR),
    193: ("no SC subscription", T),
    194: ("SC system failure", T),
    195: ("invalid SME address", P),
    196: ("destination SME barred", P),
    197: ("SM rejected - duplicate SM", P),
    198: ("TP-VPF not supported", P),
    199: ("TP-VP not supported", P),
    208: ("SIM SMS storage full", T),
    209: ("no SMS storage capability in SIM", T),
    210: ("error in MS", T),
    211: ("memory capacity exceeded", T),
    212: ("SIM application toolkit busy", T),
    213: ("SIM data download error", T),
    255: ("unspecified error cause", T),
    300: ("ME failure", T),
    301: ("SMS service of ME reserved", T),
    302: ("operation not allowed", T),
    303: ("operation not supported", T),
    304: ("invalid PDU mode parameter", P),
    305: ("invalid text mode parameter", P),
    310: ("SIM not inserted", T),
    311: ("SIM PIN required", T),
    312: ("PH-SIM PIN required", T),
    313: ("SIM failure", T),
    314: ("SIM busy", T),
    315: ("SIM wrong", T),
    316: ("SIM PUK required", T),
    317: ("SIM PIN2 required", T),
    318: ("SIM PUK2 required", T),
    320: ("memory failure", T),
    321: ("invalid memory index", T),
    322: ("memory full", T),
    330: ("SMSC address unknown", T),
    331: ("no network service", T),
    332: ("network timeout", T),
    340: ("no +CNMA acknowledgement expected", T),
    500: ("unknown error", T),
}

CME_ERRORS: dict[int, str] = {
    0: "phone failure", 1: "no connection to phone", 3: "operation not allowed",
    4: "operation not supported", 5: "PH-SIM PIN required", 10: "SIM not inserted",
    11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
    15: "SIM wrong", 16: "incorrect password", 17: "SIM PIN2 required",
    18: "SIM PUK2 required", 20: "memory full", 21: "invalid index", 22: "not found",
    23: "memory failure", 30: "no network service", 31: "network timeout",
    32: "network not allowed - emergency calls only", 100: "unknown",
}
CME_INCORRECT_PASSWORD = 16

REGISTRATION: dict[int, str] = {
    0: "not registered, not searching", 1: "registered, home network",
    2: "not registered, searching", 3: "registration denied", 4: "unknown",
    5: "registered, roaming",
}
REGISTERED = frozenset((1, 5))


def cms_kind(code: int) -> FailureKind:
    """How a +CMS ERROR on AT+CMGS counts; unlisted network causes and modem errors
    are temporary, unlisted TPDU errors (128-255) permanent."""
    known = CMS_ERRORS.get(code)
    if known is not None:
        return known[1]
    return P if 128 <= code <= 255 else T


def describe_error(line: str) -> str:
    """A final error line with its meaning: '+CMS ERROR: 38 (network out of order)'."""
    for prefix, table in (("+CMS ERROR:", CMS_ERRORS), ("+CME ERROR:", CME_ERRORS)):
        if line.startswith(prefix):
            code = line[len(prefix):].strip()
            if code.isdigit():
                entry = table.get(int(code))
                text = entry[0] if isinstance(entry, tuple) else entry
                return f"{line} ({text})" if text else line
    return line


def rssi_dbm(rssi: int) -> int | None:
    """+CSQ <rssi> in dBm: 0 is -113 or less, 31 is -51 or more, 99 unknown (None)."""
    if 0 <= rssi <= 31:
        return -113 + 2 * rssi
    return None
