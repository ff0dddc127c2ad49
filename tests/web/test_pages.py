"""The web pages end to end in Chromium: log in, send, watch, resend, suspend, read."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from playwright.async_api import expect

from omnigate.sms.segment import count_parts
from tests.web.conftest import Ui

# Texts where a counter that ignores extension characters, escapes at part ends or
# surrogate pairs would disagree with omnigate/sms/segment.py.
COUNTER_TEXTS = [
    "", "a" * 160, "a" * 161, "€" * 80, "€" * 81, "a" * 152 + "€" + "a" * 10,
    "{}[]~|^\\" * 20, "ж" * 70, "ж" * 71, "a" * 66 + "😀" + "b" * 10, "😀" * 35, "😀" * 36,
    "Grüße aus Åre, 50 € ÆØ", "Ça va? ç", "tab\there", "line\nbreak\r\f",
]


async def test_login_csrf_and_logout(ui: Ui) -> None:
    page = ui.page
    await page.goto(f"{ui.base}/ui/messages")
    await expect(page).to_have_url(re.compile(r"/ui/login$"))  # strangers go to the login
    await page.get_by_label("Account").fill("desk")
    await page.get_by_label("Password").fill("wrong")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    await ui.login("desk")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["omnigate_session"]["httpOnly"] and cookies["omnigate_session"]["sameSite"] == "Strict"
    # A POST without the session's CSRF token is refused even with the cookie.
    status = await page.evaluate(
        "fetch('/ui/logout', {method: 'POST', body: new URLSearchParams({csrf: 'forged'})})"
        ".then(r => r.status)")
    assert status == 403
    # The API still wants its own credentials: the session cookie is not one.
    jar = {"omnigate_session": cookies["omnigate_session"]["value"]}
    async with aiohttp.ClientSession(cookies=jar) as http, \
            http.get(f"{ui.base}/api/v1/messages") as resp:
        assert resp.status == 401
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/ui/login$"))
    await page.goto(f"{ui.base}/ui/send")
    await expect(page).to_have_url(re.compile(r"/ui/login$"))


async def test_counter_agrees_with_segment(ui: Ui) -> None:
    await ui.login("anna")
    page = ui.page
    text, counter = page.get_by_label("Message"), page.locator("#counter")
    await text.fill("a" * 160)
    await expect(counter).to_have_attribute("data-parts", "1")
    await text.press("End")
    await text.press_sequentially("a")  # the 161st GSM character, typed
    await expect(counter).to_have_attribute("data-parts", "2")
    await expect(counter).to_have_text("161 characters (septets) · 2 parts · GSM 7-bit")
    await text.fill("ж" * 70)
    await expect(counter).to_have_text("70 characters · 1 part · UCS-2")
    await text.press("End")
    await text.press_sequentially("ж")
    await expect(counter).to_have_text("71 characters · 2 parts · UCS-2")
    await text.fill("€" * 80)  # extension characters count two septets
    await expect(counter).to_have_attribute("data-parts", "1")
    await text.press("End")
    await text.press_sequentially("€")
    await expect(counter).to_have_attribute("data-parts", "2")
    counted = await page.evaluate("texts => texts.map(t => window.omnigateCount(t))", COUNTER_TEXTS)
    for t, js in zip(COUNTER_TEXTS, counted, strict=True):
        coding, parts = count_parts(t)
        assert (js["parts"], js["coding"]) == (parts, "GSM 7-bit" if coding.name == "GSM7"
                                               else "UCS-2"), repr(t)
    # what is sent is what was counted: line breaks are one character, not the CRLF
    # a browser submits
    await text.fill("a\n" * 80)
    await expect(counter).to_have_attribute("data-parts", "1")
    await page.get_by_label("Numbers").fill("+46705000001")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.locator("#results tbody tr")).to_contain_text("queued, 1 part")


async def test_send_to_contact_and_group_until_delivered(ui: Ui) -> None:
    await ui.login("desk")
    page = ui.page
    await page.get_by_role("link", name="Address book").click()
    for name, number, groups in (("Reception", "+46701000001", ""),
                                 ("Olle", "+46701000002", "on-call"),
                                 ("Maja", "+46701000003", "on-call, night")):
        await page.get_by_label("Name", exact=True).fill(name)
        await page.get_by_label("Number", exact=True).fill(number)
        await page.get_by_label("Groups", exact=False).first.fill(groups)
        await page.get_by_role("button", name="Add", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text(f"Added {name}.")
    await page.get_by_role("link", name="Send").click()
    await page.get_by_label("Reception").check()
    await page.get_by_label("on-call").check()
    await page.get_by_label("Numbers").fill("+46701000009, +46701000002")  # Olle twice: once
    await page.get_by_label("Message").fill("Lunch is served in the café, 12:00 – bring €")
    await expect(page.locator("#counter")).to_have_text("44 characters · 1 part · UCS-2")
    await ui.shot("send-filled")
    await page.get_by_role("button", name="Send", exact=True).click()
    rows = page.locator("#results tbody tr")
    await expect(rows).to_have_count(4)
    await expect(rows.filter(has_text="refused")).to_have_count(0)
    await expect(rows.filter(has_text="Reception +46701000001")).to_contain_text("queued")
    await ui.shot("send-result")
    await ui.smsc.wait_for(4)
    assert sorted(m[0] for m in ui.smsc.messages()) == [
        "46701000001", "46701000002", "46701000003", "46701000009"]
    await rows.filter(has_text="Maja").get_by_role("link").click()
    # the detail page refreshes itself until the status is final: watch it arrive
    await expect(page.locator("#status")).to_have_text("delivered", timeout=10_000)
    await expect(page.locator("#events")).to_contain_text("delivered")
    await ui.shot("message-detail")
    await page.get_by_role("link", name="All messages").click()
    await page.get_by_label("Status").select_option("delivered")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#messages caption")).to_have_text(re.compile(r"^[1-4] message"))
    await ui.shot("messages")


async def test_resend_failed_message(ui: Ui) -> None:
    ui.smsc.fail_every = 1  # every submit refused: ESME_RINVDSTADR, a permanent failure
    await ui.login("anna")
    page = ui.page
    await page.get_by_label("Numbers").fill("+46702000001")
    await page.get_by_label("Message").fill("Your table is ready")
    await page.get_by_role("button", name="Send", exact=True).click()
    await page.locator("#results a").click()
    await ui.wait_text("#status", "failed")
    ui.smsc.fail_every = 0
    await page.get_by_role("link", name="All messages").click()
    [failed] = await page.locator("#messages tbody tr").all()
    first_id = await failed.get_attribute("data-id")
    await failed.get_by_role("checkbox").check()
    await page.get_by_role("button", name="Send selected again").click()
    notice = page.get_by_role("status")
    await expect(notice).to_contain_text(f"#{first_id} sent again as #")
    new_id = (await notice.inner_text()).rsplit("#", 1)[1].strip()
    await ui.shot("messages-resent")
    await page.goto(f"{ui.base}/ui/messages/{new_id}")
    await ui.wait_text("#status", "delivered")
    # a user's list shows only the user's messages; the admin's list shows them too
    await page.get_by_role("button", name="Log out").click()
    await ui.login("desk")
    await page.goto(f"{ui.base}/ui/messages?account=anna")
    await expect(page.locator("#messages tbody tr")).to_have_count(2)


async def test_links_suspend_and_inbound_reply(ui: Ui) -> None:
    await ui.login("anna")
    page = ui.page
    await page.goto(f"{ui.base}/ui/links")
    await expect(page.get_by_role("alert")).to_contain_text("admin role")  # users may not
    await page.get_by_role("button", name="Log out").click()
    await ui.login("desk")
    await page.get_by_role("link", name="Links").click()
    row = page.locator("tr[data-link=smsc1]")
    await expect(row.locator(".state")).to_have_text("up")
    await row.get_by_role("button", name="Suspend smsc1").click()
    await expect(row.locator(".routing")).to_have_text("suspended")
    assert "smsc1" in ui.gw.router.suspended
    await ui.shot("links-suspended")
    await row.get_by_role("button", name="Resume smsc1").click()
    await expect(row.locator(".routing")).to_have_text("in rotation")
    assert "smsc1" not in ui.gw.router.suspended

    await ui.smsc.inject_mo("46703000001", "46700000001", "Is the doctor in today?")
    await page.get_by_role("link", name="Inbound").click()
    await ui.wait_text("#inbound tbody tr:first-child td:nth-child(5)", "Is the doctor in today?")
    await ui.shot("inbound")
    await page.get_by_role("link", name=re.compile("Reply to")).click()
    await expect(page.get_by_label("Numbers")).to_have_value(re.compile(r"46703000001$"))
    await page.get_by_label("Message").fill("Yes, until 16:00")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.locator("#results tbody tr")).to_contain_text("queued")
    await ui.smsc.wait_for(1)
    assert ui.smsc.messages()[-1][0].endswith("46703000001")


async def test_keyboard_login_and_phone_width(ui: Ui) -> None:
    page = ui.page
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{ui.base}/ui/login")
    await expect(page.get_by_label("Account")).to_be_focused()  # autofocus, once loaded
    await page.keyboard.type("anna")
    await page.keyboard.press("Tab")
    await page.keyboard.type("anna-password")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/ui/send$"))
    await page.get_by_label("Message").fill("Reception: a parcel for you at the front desk.")
    for path in ("send", "messages", "book"):
        await page.goto(f"{ui.base}/ui/{path}")
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"/ui/{path} scrolls sideways at phone width by {overflow}px"
    await page.goto(f"{ui.base}/ui/send")
    await page.get_by_label("Message").fill("Reception: a parcel for you at the front desk.")
    await ui.shot("send-phone")


async def test_address_book_csv_and_rights(ui: Ui, tmp_path: Path) -> None:
    await ui.login("anna")
    page = ui.page
    await page.get_by_role("link", name="Address book").click()
    upload = tmp_path / "contacts.csv"
    upload.write_text("name,number,groups\nEva,+46704000001,\"night,kitchen\"\nPer,+46704000002,kitchen\n")
    await page.get_by_label("CSV file").set_input_files(str(upload))
    await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("status")).to_have_text("Imported 2 contacts.")
    await expect(page.locator("#contacts caption")).to_have_text("2 contacts in 2 groups")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,number,shared\nAll,+46704000003,yes\n")  # users add no shared contacts
    await page.get_by_label("CSV file").set_input_files(str(bad))
    await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("alert")).to_have_text("line 2: only admins add shared contacts")
    await page.get_by_label("Name", exact=True).fill("Nobody")
    await page.get_by_label("Number", exact=True).fill("call me")
    await page.get_by_role("button", name="Add", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text("number: digits with an optional leading +")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Export as CSV").click()
    exported = Path(await (await download.value).path()).read_text()
    assert exported.splitlines() == ["name,number,groups,shared", 'Eva,+46704000001,"night,kitchen",no',
                                     "Per,+46704000002,kitchen,no"]
    await page.get_by_role("button", name="Delete Per").click()
    await expect(page.locator("#contacts caption")).to_have_text("1 contact in 2 groups")
    # another account sees none of anna's personal contacts
    await page.get_by_role("button", name="Log out").click()
    await ui.login("desk")
    await page.get_by_role("link", name="Address book").click()
    await expect(page.locator("#contacts caption")).to_have_text("0 contacts in 0 groups")
