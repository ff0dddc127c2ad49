"""The README's accounts example is a valid config (docs that cannot drift)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from omnigate.config import ConfigError, parse

README = (Path(__file__).resolve().parent.parent.parent / "README.md").read_text()


def test_accounts_example_is_valid() -> None:
    [block] = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if "[billing]" in b]
    config = parse(tomllib.loads(block))
    [shop] = config.accounts
    assert shop.billing == "prepaid" and shop.destinations == ["+46", "+47"]
    assert config.billing.prices == {"+46": 0.05, "+4670": 0.04}


def test_account_mistakes_name_their_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"accounts": [{"name": "a", "senders": ["TWELVE-CHARS"], "default_sender": "X",
                             "destinations": ["+46x"], "billing": "credit"}],
               "billing": {"prices": {"46": -1}, "timezone": "Mars/Olympus"}})
    problems = "\n".join(info.value.problems)
    for expected in ("accounts[0].senders: Value error, sender 'TWELVE-CHARS'",
                     "accounts[0].destinations: Value error, destination '+46x'",
                     "accounts[0].billing: Input should be 'postpaid' or 'prepaid'",
                     "billing.prices: Value error, price of '46' is negative",
                     "billing.timezone: Value error, unknown time zone 'Mars/Olympus'"):
        assert expected in problems, problems
