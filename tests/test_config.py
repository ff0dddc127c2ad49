"""Config: defaults, every mistake with its path, env secrets, check-config exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnigate.cli import main
from omnigate.config import ConfigError, load, parse

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid_and_runs_on_the_simulator() -> None:
    config = load(ROOT / "etc" / "omnigate.toml")
    assert config.store.url.startswith("sqlite+aiosqlite:///")
    assert config.http.listen == "127.0.0.1:8080"
    assert config.links[0].name == "smsc1"
    assert config.simulators[0].listen == "127.0.0.1:2775"
    assert config.routes[0].match is None


def test_empty_config_has_defaults() -> None:
    config = parse({})
    assert config.numbers.default_region == "SE"
    assert config.messages.validity == 7 * 86400
    assert config.http.allow == ["127.0.0.0/8", "::1/128"]


def test_every_mistake_is_reported_with_its_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse({
            "http": {"listen": "nowhere", "allow": ["300.1.1.1/8"]},
            "messages": {"max_parts": 0},
            "store": {"url": "mysql://root@localhost/sms"},
            "links": [{"name": "a", "type": "smpp"}],
            "routes": [{"tiers": [["a", "ghost"]]}, {"tiers": [[]]}],
            "bogus": 1,
        })
    text = "\n".join(err.value.problems)
    assert "http.listen" in text
    assert "http.allow" in text
    assert "messages.max_parts" in text
    assert "store.url: Value error, use sqlite+aiosqlite:///PATH" in text
    assert "routes[1].tiers" in text
    assert "bogus" in text


def test_route_naming_unknown_link() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"links": [{"name": "a", "type": "smpp"}], "routes": [{"tiers": [["a", "ghost"]]}]})
    assert err.value.problems == ["routes[0].tiers[0]: no link named 'ghost'"]


def test_duplicate_link_names() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"links": [{"name": "a", "type": "smpp"}, {"name": "a", "type": "smpp"}]})
    assert "used twice" in err.value.problems[0]


def test_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSC1_PASSWORD", "s3cret")
    config = parse({"links": [{"name": "a", "type": "smpp", "password": "${SMSC1_PASSWORD}"}]})
    assert config.links[0].model_extra == {"password": "s3cret"}


def test_unset_environment_secret_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as err:
        parse({"links": [{"name": "a", "type": "smpp", "password": "${NOPE_PASSWORD}"}]})
    assert err.value.problems == ["links[0].password: environment variable NOPE_PASSWORD is not set"]


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(ROOT / "etc" / "omnigate.toml")]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[[links]]\nname = "x"\ntype = "smpp"\nhosts = ["nohost"]\nwindow = -1\n'
                   '[[links]]\nname = "y"\ntype = "carrier-pigeon"\n')
    assert main(["check-config", "-c", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "links[0]" in err
    assert "links[1].type: unknown link type 'carrier-pigeon'" in err


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[store\nurl=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(broken)
