"""[tcp] config: the README example is valid, mistakes are reported with their path, and the
README's command table lists exactly the commands the session knows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from omnigate.api.tcp import COMMANDS
from omnigate.config import ConfigError, parse

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README.split("## TCP line protocol", 1)[1].split("\n## ", 1)[0]


def test_readme_example_is_valid() -> None:
    block = re.findall(r"```toml\n(.*?)```", SECTION, re.S)[0]
    config = parse(tomllib.loads(block))
    assert config.tcp is not None
    assert config.tcp.listen == "127.0.0.1:2323"
    assert parse({}).tcp is None  # absent section: no listener


def test_readme_command_table_matches_the_session() -> None:
    first_cells = re.findall(r"^\| (`[A-Z].*?) \|", SECTION, re.M)
    verbs = {v for cell in first_cells for v in re.findall(r"`([A-Z]+)", cell)}
    assert verbs == set(COMMANDS)


@pytest.mark.parametrize(("tcp", "problem"), [
    ({"listen": "2323"}, "tcp.listen: Value error, expected host:port"),
    ({"allow": ["10.0.0.0/33"]}, "tcp.allow: Value error"),
    ({"charset": "klingon"}, "tcp.charset: Value error, unknown charset 'klingon'"),
    ({"max_line": 10}, "tcp.max_line: Input should be greater than or equal to 256"),
    ({"idle_timeout": 0}, "tcp.idle_timeout: Input should be greater than 0"),
    ({"max_sessions": 0}, "tcp.max_sessions: Input should be greater than or equal to 1"),
    ({"sessions": 5}, "tcp.sessions: Extra inputs are not permitted"),
])
def test_mistakes_name_their_path(tcp: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse({"tcp": tcp})
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems
