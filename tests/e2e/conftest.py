"""Fixtures for the e2e suite: the local multi-region Kubernetes stack (hub + 3 regions).

The `stack` fixture (session-scoped) reuses clusters that are already up (e.g. from
`make dev-up`) and starts the missing ones with hack/dev-up.sh; when the last test session using
the stack ends, it stops only the clusters that test sessions started (see Stack.join/leave).
Set WATTSCALE_E2E_KEEP=1 to leave them running for the next run.

If the binaries are missing the fixture FAILS (it does not skip): build them with `make bins`.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helper module sits next to this file; pytest's importlib mode does not put it on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from stack import Stack, StackError, check_bins


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is an e2e test, whether or not the module says so."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    problem = None
    try:
        bin_dir = check_bins()
    except StackError as exc:
        problem = str(exc)
    if problem:
        pytest.fail(problem, pytrace=False)
    s = Stack.from_scripts(bin_dir)
    try:
        s.join()
    except StackError as exc:
        problem = str(exc)
    if problem:
        s.leave()
        pytest.fail(problem, pytrace=False)
    yield s
    s.leave(keep=os.environ.get("WATTSCALE_E2E_KEEP") == "1")


@pytest.fixture
def region(stack: Stack) -> str:
    """The region cluster single-region tests run in (the first one)."""
    return stack.regions[0]


@pytest.fixture
def namespace(stack: Stack, region: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace in `region`, deleted (without waiting) afterwards."""
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:6]}"
    stack.kubectl(region, "create", "namespace", name)
    yield name
    stack.kubectl(region, "delete", "namespace", name, "--wait=false", check=False)
