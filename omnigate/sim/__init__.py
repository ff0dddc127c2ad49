"""Protocol simulators that ship with omnigate: for trying it, for tests, for benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omnigate.sim.smpp import RecordedSubmit, SimulatorError, SmscSimulator

__all__ = ["RecordedSubmit", "SimulatorError", "SmscSimulator"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m omnigate.sim.smpp` does not import the module twice.
    if name in __all__:
        from omnigate.sim import smpp

        return getattr(smpp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
