"""Shared test configuration.

- Hypothesis profiles: "default" for the release build, "asan" (fewer examples)
  when the suite runs against the sanitizer build (H2WS_EXPECT_BUILD=asan).
- The sanitizer run proves it really imports the sanitizer build.
- In debug builds the core counts live allocations: every test must leave the
  count where it found it (no leaks through the binding).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
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


COUNTING = bool(_core.build_info()["debug"])  # the allocation counter exists


@pytest.fixture(autouse=True)
def _no_core_leaks() -> Iterator[None]:
    if not COUNTING:
        yield
        return
    gc.collect()
    before = _core.mem_live_count()
    yield
    gc.collect()
    after = _core.mem_live_count()
    assert after == before, f"core allocations leaked: {after - before}"


# -- async tests: each runs on asyncio and on uvloop ---------------------------

ASYNC_TEST_TIMEOUT = 120.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "one_loop: run an async test on asyncio only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if inspect.iscoroutinefunction(metafunc.function):
        loops = (
            ["asyncio"]
            if metafunc.definition.get_closest_marker("one_loop")
            else ["asyncio", "uvloop"]
        )
        metafunc.fixturenames.append("aio_loop")
        metafunc.parametrize("aio_loop", loops)


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kind = pyfuncitem.callspec.params["aio_loop"]
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    loop = _new_loop(kind)
    try:
        loop.run_until_complete(asyncio.wait_for(pyfuncitem.obj(**args), ASYNC_TEST_TIMEOUT))
        # Let transports finish closing before the loop goes away.
        loop.run_until_complete(asyncio.sleep(0))
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    return True
