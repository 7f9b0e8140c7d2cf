"""Waiting on the operator in its own time: budgets counted in control-loop passes, not seconds.

What the operator does (scale, move, report) happens over its passes: one every ``--interval``
seconds on an idle machine, fewer on a 2-core machine that builds and other test sessions keep
busy. A wait whose budget is in seconds is either too short there or far too long here. So a
wait here gets a budget of the operator's passes, derived from what must happen (a rate window
to measure demand, a cold start, the pass that decides and the one that sees the result), and
the budget stretches with the machine. A pass is counted from the operator's own
``wattscale_decisions_total`` for the InferenceDeployment (one decision per pass), read from its
``/metrics`` endpoint.

Seconds bound only what is not a pass: a new operator process's start-up, and a stall (no pass
at all, which is a failure whatever the machine).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from stack import NOT_YET

INTERVAL_SECONDS = 2.0
"""``--interval`` of every operator the e2e suite starts."""
REGION_INTERVAL_SECONDS = 2.0
"""``WATTSCALE_REGION_INTERVAL_SECONDS``: the Region health loop's period."""
RATE_WINDOW_SECONDS = 8.0
"""``WATTSCALE_RATE_WINDOW_SECONDS``: demand and latency are rates over this window."""
COLD_START_SECONDS = 5
"""``spec.placement.coldStartSeconds`` of the e2e InferenceDeployments."""
SCALE_DOWN_STABILIZATION_SECONDS = 15
"""``spec.placement.scaleDownStabilizationSeconds`` of the e2e InferenceDeployments."""


def passes_for(seconds: float) -> int:
    """The passes that at least ``seconds`` of operator time take (a pass is >= one interval)."""
    return math.ceil(seconds / INTERVAL_SECONDS)


def step_passes(cold_start_seconds: float = COLD_START_SECONDS) -> int:
    """The passes one step of the plan may take, at most: the demand behind it measured over a
    full rate window, the new replicas' cold start, then the pass that decides and the one that
    sees the replicas Ready."""
    return passes_for(RATE_WINDOW_SECONDS + cold_start_seconds) + 2


STEP_PASSES = step_passes()
"""One step of the plan for the e2e InferenceDeployments (:data:`COLD_START_SECONDS`)."""

SETTLE_PASSES = passes_for(RATE_WINDOW_SECONDS + SCALE_DOWN_STABILIZATION_SECONDS)
"""Passes after which a plan that holds has held through a rate window and a scale-down window:
what "it stays so" needs to be watched for."""

START_UP_SECONDS = 240.0
"""How long a new operator process may take to its first pass: Python imports the scientific
stack, kopf starts and lists every kind it watches. About 15 s on an idle machine; several times
that on a 2-core machine under full load."""

STALL_SECONDS = 120.0
"""The longest a running operator may go without a single pass before a wait gives up. Every
request of a pass has its own timeout (Prometheus and feeds: a few seconds; the API servers:
kopf's), so a pass that takes this long is a hang, not a slow machine."""

STALLED = "without an operator pass"
"""What a wait's failure says when the operator made no pass at all (not a budget run out)."""

_SAMPLE = re.compile(r"^wattscale_decisions_total\{([^}]*)\}\s+([0-9.eE+-]+)\s*$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class OperatorClock:
    """Counts an operator's passes for one InferenceDeployment, across restarts of the process.

    Call :meth:`restarted` whenever a new operator process is started on the same metrics URL:
    its counters start again from zero.
    """

    metrics_url: str
    namespace: str
    name: str
    _base: int = 0
    _last: int = 0
    _started: float = field(default_factory=time.monotonic)

    def restarted(self) -> None:
        self._base += self._last
        self._last = 0
        self._started = time.monotonic()

    def _read(self) -> int | None:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
                text = resp.read().decode(errors="replace")
        except (urllib.error.URLError, OSError):
            return None  # not started yet, or being restarted
        total = 0.0
        for labels, value in _SAMPLE.findall(text):
            found = dict(_LABEL.findall(labels))
            if found.get("namespace") == self.namespace and found.get("deployment") == self.name:
                total += float(value)
        return int(total)

    def passes(self) -> int:
        """Passes made so far, by every operator process this clock has seen."""
        now = self._read()
        if now is not None and now >= self._last:
            self._last = now
        return self._base + self._last

    def wait(
        self,
        what: str,
        check: Callable[[], bool],
        passes: int,
        *,
        every: float = 1.0,
        alive: Callable[[], None] | None = None,
        describe: Callable[[], str] | None = None,
    ) -> None:
        """Poll ``check`` until it holds; fail once ``passes`` passes went by without it.

        ``check`` raising is "not yet" (a status not written yet, an API server that is busy);
        the last error is in the failure message. ``alive`` is called on every poll and may
        raise to end the wait at once (e.g. the operator process died). ``describe`` adds what
        to show on failure (status, log tail).
        """
        first = self.passes()
        seen, progress = first, time.monotonic()
        error = ""
        while True:
            if alive is not None:
                alive()
            try:
                if check():
                    return
                error = ""
            except Exception as exc:  # "not yet"; shown if the wait fails
                error = f"{type(exc).__name__}: {str(exc)[:600]}"
            now = self.passes()
            if now > seen:
                seen, progress = now, time.monotonic()
            stalled = time.monotonic() - progress
            limit = START_UP_SECONDS if self._last == 0 else STALL_SECONDS
            if now - first >= passes or stalled > limit:
                why = (
                    f"{now - first} operator passes (budget {passes})"
                    if now - first >= passes
                    else f"{stalled:.0f}s {STALLED} ({now - first} passes)"
                )
                raise AssertionError(
                    f"waited {why} until {what}"
                    + (f"\nlast check failed with {error}" if error else "")
                    + (f"\n{describe()}" if describe is not None else "")
                )
            time.sleep(every)

    def let_pass(self, passes: int, each: Callable[[], object] | None = None) -> None:
        """Let ``passes`` operator passes go by, calling ``each`` about once a second meanwhile
        (e.g. to sample a status, or to assert that something still holds)."""
        target = self.passes() + passes

        def sample() -> None:
            if each is not None:
                with contextlib.suppress(*NOT_YET):  # a sample lost to a busy API server
                    each()

        def gone_by() -> bool:
            return self.passes() >= target

        self.wait(f"{passes} operator passes to go by", gone_by, passes + 3, alive=sample)
