"""Web pages for people: log in, send, messages, links, inbound, address book.

Only the path prefix lives here, so the HTTP gate (`api/http.py`) can exempt
the pages from API credentials without importing the pages themselves: they
check their own session cookie (`web/session.py`).
"""

PREFIX = "/ui"
