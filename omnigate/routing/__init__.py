"""Routing decisions: which link takes an MT message (outbound), and later where an MO goes."""
