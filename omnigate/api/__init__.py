"""Ingress: the ways messages come in (HTTP, SMTP, spool, SQL polling, TCP lines, SMPP).

Each ingress parses its own protocol, answers in its own language, and hands
a `SubmitRequest` to the submit function it was built with; none imports the
gateway. Submodules are imported by the composition root as needed, so this
package imports nothing itself.
"""
