"""The address book of the web pages: personal and shared contacts, groups as tags.

A contact belongs to an account (personal) or to nobody (shared, kept by
admins). A group is a name written on contacts, so a contact may be in many
groups and a group needs no table of its own. The table lives in the store's
database next to the messages but in its own metadata: the book is a feature
of the pages, not of the queue.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()
contacts = Table(
    "web_contacts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(64), nullable=False, index=True),  # "" = shared
    Column("name", String(100), nullable=False),
    Column("number", String(32), nullable=False),
    Column("groups", String(500), nullable=False, default=""),
)

SHARED = ""
NAME_MAX = 100
GROUPS_MAX = 500
# What a person types as a number: digits with an optional +, spaces, dashes and
# parentheses; `Gateway.submit` normalises and checks it for real when sending.
_NUMBER = re.compile(r"^\+?[0-9][0-9 ()\-]{2,30}$")
_GROUP = re.compile(r"^[\w .\-]{1,40}$")
CSV_FIELDS = ("name", "number", "groups", "shared")
CSV_MAX_ROWS = 5000


class BookError(ValueError):
    """A contact field that cannot be stored, with the field's name."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    owner: str
    name: str
    number: str
    groups: tuple[str, ...]

    @property
    def shared(self) -> bool:
        return self.owner == SHARED


def check(name: str, number: str, groups: str) -> tuple[str, str, tuple[str, ...]]:
    """Cleaned (name, number, groups), or BookError naming the bad field."""
    name, number = name.strip(), number.strip()
    if not name or len(name) > NAME_MAX:
        raise BookError("name", f"1 to {NAME_MAX} characters")
    if not _NUMBER.match(number):
        raise BookError("number", "digits with an optional leading +")
    tags = tuple(dict.fromkeys(g.strip() for g in groups.split(",") if g.strip()))
    for tag in tags:
        if not _GROUP.match(tag):
            raise BookError("groups", f"{tag[:40]!r}: letters, digits, space, dot or dash, "
                                      "up to 40, separated by commas")
    if len(",".join(tags)) > GROUPS_MAX:
        raise BookError("groups", f"at most {GROUPS_MAX} characters in all")
    return name, number, tags


class AddressBook:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def open(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def visible(self, account: str) -> list[Contact]:
        """The account's own contacts and the shared ones, by name."""
        c = contacts.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(contacts).where(or_(c.owner == account, c.owner == SHARED))
                .order_by(c.name, c.id))).all()
        return [Contact(r.id, r.owner, r.name, r.number,
                        tuple(g for g in r.groups.split(",") if g)) for r in rows]

    async def add(self, owner: str, name: str, number: str, groups: str) -> None:
        await self.add_many([(owner, *check(name, number, groups))])

    async def add_many(self, rows: list[tuple[str, str, str, tuple[str, ...]]]) -> None:
        if not rows:
            return
        async with self.engine.begin() as conn:
            await conn.execute(insert(contacts), [
                {"owner": o, "name": n, "number": num, "groups": ",".join(g)}
                for o, n, num, g in rows])

    async def remove(self, id: int, account: str, admin: bool) -> bool:
        """Delete a personal contact of `account`, or a shared one if `admin`."""
        c = contacts.c
        owners = [account, SHARED] if admin else [account]
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(contacts).where(c.id == id, c.owner.in_(owners)))
        return bool(result.rowcount)


def groups_of(book: list[Contact]) -> dict[str, list[Contact]]:
    """Group name -> its contacts, groups sorted by name."""
    out: dict[str, list[Contact]] = {}
    for contact in book:
        for g in contact.groups:
            out.setdefault(g, []).append(contact)
    return dict(sorted(out.items()))


def to_csv(book: list[Contact]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_FIELDS)
    for c in book:
        writer.writerow((c.name, c.number, ",".join(c.groups), "yes" if c.shared else "no"))
    return buf.getvalue()


def from_csv(text: str, account: str, admin: bool
             ) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Rows to add from a CSV with a header naming at least `name` and `number`;
    BookError names the line and field of the first bad row (nothing is added then)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"name", "number"} - set(reader.fieldnames or ())
    if missing:
        raise BookError("file", f"the header line needs the columns {', '.join(sorted(missing))}")
    rows = []
    for line, row in enumerate(reader, start=2):
        if len(rows) >= CSV_MAX_ROWS:
            raise BookError("file", f"more than {CSV_MAX_ROWS} contacts")
        shared = (row.get("shared") or "").strip().lower() in {"yes", "true", "1"}
        if shared and not admin:
            raise BookError(f"line {line}", "only admins add shared contacts")
        try:
            cleaned = check(row.get("name") or "", row.get("number") or "", row.get("groups") or "")
        except BookError as e:
            raise BookError(f"line {line} {e.field}", e.reason) from None
        rows.append((SHARED if shared else account, *cleaned))
    return rows
