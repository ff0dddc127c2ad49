"""The README's on-call example is a valid config, and `omnigate oncall show` answers from it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from omnigate.cli import main
from omnigate.config import parse

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
[BLOCK] = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if "[[schedules]]" in b]


def test_readme_example_parses_and_chains_two_schedules() -> None:
    config = parse(tomllib.loads(BLOCK))
    jour, chefer = config.schedules
    assert (jour.ack, jour.escalate_to, chefer.name) == (True, "chefer", "chefer")
    assert jour.holidays is not None and jour.holidays.country == "SE"


def test_oncall_show_from_the_readme_config(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "omnigate.toml"
    path.write_text(BLOCK)
    assert main(["oncall", "show", "JOUR", "--at", "2026-12-24T22:00", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == ("jour at 2026-12-24T22:00+01:00 (Europe/Stockholm): +46705555555, "
                   "+46703333333, +46704444444\n"
                   "  why: holiday: custom date 2026-12-24, rotation weekly turn 3 of 3\n")
    assert main(["oncall", "show", "jour", "--at", "2026-07-10T03:00+00:00", "--json",
                 "-c", str(path)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == {"schedule": "jour", "at": "2026-07-10T05:00:00+02:00",
                      "timezone": "Europe/Stockholm", "numbers": ["+46706666666"],
                      "why": "summer: Sam covers"}
    assert main(["oncall", "show", "nobody", "-c", str(path)]) == 2
    assert "no schedule named 'nobody' (jour, chefer)" in capsys.readouterr().err
    assert main(["oncall", "show", "jour", "--at", "yesterday", "-c", str(path)]) == 2
    assert "--at: expected ISO 8601" in capsys.readouterr().err
