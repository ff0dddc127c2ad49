"""Pure SMS codecs (3GPP TS 23.038, 23.040) and phone numbers: no I/O, no other omnigate."""
