"""What the three simulators share (`omnigate.sim.base`): options, faults, waiting, CLI.

Each protocol's own behaviour is tested over the wire in its test_*_sim.py; here the
shared surface is checked once per simulator, so that none of them drifts.
"""

from __future__ import annotations

import argparse
import asyncio
from types import ModuleType
from typing import Any

import pytest

from omnigate.sim import cimd2, smpp, ucp
from omnigate.sim.base import FAULTS, SimulatorError

# module, simulator class, its login option and the word wait_for counts
SIMULATORS = [
    pytest.param(smpp, smpp.SmscSimulator, "system_id", "submit_sm", id="smpp"),
    pytest.param(cimd2, cimd2.Cimd2Simulator, "user", "submits", id="cimd2"),
    pytest.param(ucp, ucp.UcpSimulator, "user", "OT 51", id="ucp"),
]


@pytest.mark.parametrize(("module", "cls", "login", "units"), SIMULATORS)
def test_cli_options_reach_the_simulator(module: ModuleType, cls: type, login: str,
                                         units: str) -> None:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    flag = "--" + login.replace("_", "-")
    status = list(cls.DLR_STATUSES)[-1]
    args = parser.parse_args([
        "--listen", "[::1]:0", flag, "me", "--password", "pw", "--dlr", "--dlr-delay", "0.5",
        "--dlr-status", status, "--throttle-every", "3", "--fail-every", "4",
        "--drop-after", "5", "--response-delay", "0.25", "--no-response", "--keep", "7",
    ])
    sim = module.simulator_from_args(args)
    assert isinstance(sim, cls)
    assert (sim.host, sim.port, getattr(sim, login), sim.password) == ("::1", 0, "me", "pw")
    assert sim.faults() == {
        "throttle_every": 3, "fail_every": 4, "drop_after": 5, "response_delay": 0.25,
        "no_response": True, "dlr": True, "dlr_delay": 0.5, "dlr_status": status,
    }
    assert sim.keep == 7 and sim.submits.maxlen == 7
    defaults = module.simulator_from_args(parser.parse_args([]))
    assert defaults.dlr_status == cls.DLR_STATUS_DEFAULT and defaults.keep == 100_000


@pytest.mark.parametrize(("module", "cls", "login", "units"), SIMULATORS)
def test_fault_values_are_checked(module: ModuleType, cls: Any, login: str,
                                  units: str) -> None:
    sim = cls()
    with pytest.raises(ValueError, match="dlr_status must be one of"):
        cls(dlr_status="nonsense")
    for bad in ({"bogus": 1}, {"dlr": 1}, {"fail_every": -1}, {"drop_after": 1.5},
                {"throttle_every": True}, {"dlr_status": "nonsense"}):
        with pytest.raises(ValueError):
            sim.set_faults(**bad)
    assert sim.faults() == cls().faults()  # a refused call changes nothing
    sim.set_faults(throttle_every=2, response_delay=1, dlr=True)
    assert (sim.throttle_every, sim.response_delay, sim.dlr) == (2, 1.0, True)
    assert set(sim.faults()) == set(FAULTS) and set(FAULTS) <= set(sim.stats()["faults"])


@pytest.mark.parametrize(("module", "cls", "login", "units"), SIMULATORS)
async def test_wait_for_says_how_far_it_got_and_stop_releases_waiters(
        module: ModuleType, cls: Any, login: str, units: str) -> None:
    async with cls() as sim:
        assert sim.port != 0 and sim.connections == 0
        with pytest.raises(TimeoutError, match=f"{sim.NAME} got 0 of 1 {units} in 0.01s"):
            await sim.wait_for(1, timeout=0.01)
        await sim.wait_for(0)  # already there: no wait
        waiter = asyncio.create_task(sim.wait_for(1, timeout=5))
        await asyncio.sleep(0)
    with pytest.raises(SimulatorError, match="stopped"):
        await waiter
    with pytest.raises(SimulatorError, match="to take an MO"):
        await sim.inject_mo("123", "456", "nobody bound")
