"""Shared test configuration.

- Hypothesis profiles: "default" for the release build, "asan" (fewer examples)
  when the suite runs against the sanitizer build (H2WS_EXPECT_BUILD=asan).
- The sanitizer run proves it really imports the sanitizer build.
- In debug builds the core counts live allocations: every test must leave the
  count where it found it (no leaks through the binding).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from h2ws import _core

EXPECT = os.environ.get("H2WS_EXPECT_BUILD", "")

settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile(
    "asan",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("asan" if EXPECT == "asan" else "default")


def pytest_sessionstart(session: pytest.Session) -> None:
    if EXPECT == "asan":
        info = _core.build_info()
        if not (info["sanitize"] and info["debug"]):
            raise pytest.UsageError(f"expected the ASan debug build of h2ws._core, got {info}")


@pytest.fixture(autouse=True)
def _no_core_leaks() -> Iterator[None]:
    gc.collect()
    before = _core.mem_live_count()
    yield
    gc.collect()
    after = _core.mem_live_count()
    assert after == before, f"core allocations leaked: {after - before}"
