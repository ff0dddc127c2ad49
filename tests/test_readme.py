"""The README's config examples are valid configs (docs that cannot drift)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from omnigate import carriers
from omnigate.config import parse

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
LINK_BLOCKS = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if "[[links]]" in b]


def test_readme_has_link_examples_for_every_link_type() -> None:
    types = {tomllib.loads(b)["links"][0]["type"] for b in LINK_BLOCKS}
    assert types == set(carriers.registry())


@pytest.mark.parametrize("block", LINK_BLOCKS)
def test_link_example_is_valid(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in re.findall(r"\$\{([A-Z0-9_]+)\}", block):
        monkeypatch.setenv(name, "secret")
    config = parse(tomllib.loads(block))
    _, problems = carriers.resolve(config.links)
    assert problems == []


ROUTING_BLOCKS = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S)
                  if "[[routes]]" in b or "[cluster]" in b]


@pytest.mark.parametrize("block", ROUTING_BLOCKS)
def test_routing_and_cluster_examples_are_valid(block: str) -> None:
    data = tomllib.loads(block)
    names = {n for r in data.get("routes", []) for tier in r["tiers"] for n in tier}
    data["links"] = [{"name": n, "type": "smpp", "hosts": ["127.0.0.1:2775"]} for n in names]
    data["store"] = {"url": "postgresql+asyncpg://postgres@127.0.0.1/test"}
    config = parse(data)  # raises ConfigError with every problem
    assert config.routes or config.cluster


INBOUND_BLOCKS = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if "[inbound]" in b]


def test_inbound_example_is_valid() -> None:
    [block] = INBOUND_BLOCKS
    config = parse(tomllib.loads(block))
    assert config.inbound.aliases["support"][1].startswith("reply:")
