"""An operator-like replica loop for virtual-time emulator runs (tests and benchmarks only).

Scale-up takes effect after a cold start (``ready_seconds``); scale-down waits until lower
targets held for ``down_after_seconds``, like the HPA's stabilisation window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.fakes.vllm_emulator import Emulator


@dataclass
class ColdStartAutoscaler:
    emu: Emulator
    ready_seconds: float
    down_after_seconds: float
    pending: list[tuple[float, int]] = field(default_factory=list)  # (ready at, replicas)
    down_since: float | None = None

    def tick(self) -> None:
        """Call after every emulator step: replicas whose cold start is over come up."""
        if self.pending and self.pending[0][0] <= self.emu.now:
            self.emu.set_replicas(self.pending.pop(0)[1])

    def decide(self, want: int) -> None:
        """One control-loop decision: ``want`` replicas."""
        emu = self.emu
        target = self.pending[-1][1] if self.pending else len(emu.replicas)
        if want > target:
            self.pending.append((emu.now + self.ready_seconds, want))
            self.down_since = None
        elif want < target:
            self.down_since = emu.now if self.down_since is None else self.down_since
            if emu.now - self.down_since >= self.down_after_seconds:
                emu.set_replicas(want)
                self.pending.clear()
                self.down_since = None
        else:
            self.down_since = None
