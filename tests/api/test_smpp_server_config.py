"""[smpp_server] in the config: defaults, mistakes with their paths, check-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnigate.cli import main
from omnigate.config import ConfigError, parse


def test_defaults() -> None:
    server = parse({"smpp_server": {}}).smpp_server
    assert server is not None
    assert (server.listen, server.window, server.max_binds, server.rate) == (
        "127.0.0.1:2777", 10, 4, 0)
    assert server.binds == ["transmitter", "receiver", "transceiver"]
    assert parse({}).smpp_server is None  # absent: no SMPP server


def test_mistakes_have_paths() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"smpp_server": {"listen": "nowhere", "window": 0,
                               "accounts": [{"name": "a", "binds": ["sender"]}]}})
    text = str(err.value)
    for path in ("smpp_server.listen", "smpp_server.window", "smpp_server.accounts[0].binds[0]"):
        assert path in text
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        parse({"smpp_server": {"tls_cert": "c.pem"}})


def test_check_config_names_unknown_accounts(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "omnigate.toml"
    path.write_text('[[accounts]]\nname = "acme"\n\n[smpp_server]\n'
                    '[[smpp_server.accounts]]\nname = "ghost"\nrate = 5\n')
    assert main(["check-config", "-c", str(path)]) == 1
    assert "smpp_server.accounts[0].name: no [[accounts]] named 'ghost'" in capsys.readouterr().err


def test_readme_example_is_valid() -> None:
    import re
    import tomllib

    from omnigate.api.smpp import server_problems

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S)
                if "[smpp_server]" in b]
    data = tomllib.loads(block)
    data["accounts"] = [{"name": "alarms"}]
    config = parse(data)
    assert config.smpp_server is not None and config.smpp_server.accounts[0].rate == 20
    assert server_problems(config.smpp_server, config.accounts) == []
