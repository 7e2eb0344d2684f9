"""h2ws._core.Waiter and WakeBatch, what ``recv()`` and ``async for`` await:
results and exceptions handed to the waiting task, cancellation, and the
message going back to the WebSocket when its task is cancelled before it
took it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from h2ws import _core
from h2ws.exceptions import ConnectionClosedError, ConnectionClosedOK
from h2ws.http import Headers, Request
from h2ws.websocket import WebSocket, WebSocketTransport


class Owner:
    def __init__(self) -> None:
        self.back: list[Any] = []

    def _unreceive(self, value: Any) -> None:
        self.back.append(value)


async def test_set_result_hands_the_value_to_the_task() -> None:
    batch = _core.WakeBatch(asyncio.get_running_loop())
    w = batch.waiter()
    task = asyncio.ensure_future(_await(w))
    await asyncio.sleep(0)
    assert not w.done()
    assert w.set_result("message") is True
    assert w.set_result("again") is False
    assert await task == "message"


async def test_set_result_while_active_waits_for_run() -> None:
    batch = _core.WakeBatch(asyncio.get_running_loop())
    w = batch.waiter()
    task = asyncio.ensure_future(_await(w))
    await asyncio.sleep(0)
    batch.active = True
    assert w.set_result(b"x")
    batch.active = False
    assert batch.waiters == [w]
    asyncio.get_running_loop().call_soon(batch.run)
    assert await task == b"x"
    assert batch.waiters == []


async def test_set_exception_raises_in_the_task() -> None:
    batch = _core.WakeBatch(asyncio.get_running_loop())
    w = batch.waiter(None, True)
    assert w.iterating
    task = asyncio.ensure_future(_await(w))
    await asyncio.sleep(0)
    assert w.set_exception(StopAsyncIteration()) is True
    assert w.set_result(1) is False
    with pytest.raises(StopAsyncIteration):
        await task
    with pytest.raises(TypeError):
        batch.waiter().set_exception("not an exception")  # type: ignore[arg-type]


async def test_cancel_while_pending() -> None:
    batch = _core.WakeBatch(asyncio.get_running_loop())
    owner = Owner()
    w = batch.waiter(owner)
    task = asyncio.ensure_future(_await(w))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.cancelled()
    assert w.set_result("late") is False
    assert owner.back == []


async def test_cancel_after_set_result_gives_the_value_back() -> None:
    """The task is cancelled after its message came and before it ran: the
    message goes back to the owner instead of being lost."""
    batch = _core.WakeBatch(asyncio.get_running_loop())
    owner = Owner()
    w = batch.waiter(owner)
    task = asyncio.ensure_future(_await(w))
    await asyncio.sleep(0)
    assert w.set_result("message")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert owner.back == ["message"]


async def test_completed_returns_at_once() -> None:
    w = _core.Waiter.completed("now")
    assert w.done()
    assert not asyncio.iscoroutine(w)
    assert await w == "now"
    assert await _core.Waiter.completed(None) is None
    with pytest.raises(RuntimeError):
        w.get_loop()


async def _await(w: Any) -> Any:
    return await w


class Carrier:
    """Just enough of a connection for a WebSocketTransport."""

    def __init__(self) -> None:
        self.consumed = 0
        self.sent: list[Any] = []

    def _ws_send(self, sid: int, message: Any) -> bool:
        self.sent.append(message)
        return False

    def _ws_consume(self, sid: int, credit: int) -> None:
        self.consumed += credit

    def _ws_close(self, sid: int, code: int | None, reason: str) -> None:
        pass

    def _ws_abort(self, sid: int) -> None:
        pass

    def _ws_pause_reading(self, sid: int, paused: bool) -> None:
        pass

    def _ws_extra_info(self, name: str, default: Any) -> Any:
        return default


def make_ws() -> tuple[WebSocket, WebSocketTransport, Carrier]:
    carrier = Carrier()
    request = Request("/", Headers([]))
    t = WebSocketTransport(carrier, 1, request, None, "2", loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    ws = WebSocket()
    t.set_protocol(ws)
    ws.connection_made(t)
    return ws, t, carrier


def deliver(t: WebSocketTransport, message: Any, credit: int) -> None:
    t._on_message(message, credit)


async def test_anext_returns_no_coroutine_and_hands_over_messages() -> None:
    ws, t, carrier = make_ws()
    deliver(t, "a", 10)
    aw = ws.__anext__()
    assert not asyncio.iscoroutine(aw)
    assert await aw == "a"
    assert carrier.consumed == 10
    task = asyncio.ensure_future(_await(ws.__anext__()))
    await asyncio.sleep(0)
    deliver(t, "b", 5)  # straight to the waiting task, credit returned now
    assert carrier.consumed == 15
    deliver(t, "c", 7)  # queued, its credit held until taken
    assert carrier.consumed == 15
    assert await task == "b"
    assert await ws.recv() == "c"
    assert carrier.consumed == 22


async def test_cancelled_iteration_loses_no_message() -> None:
    ws, t, _ = make_ws()
    task = asyncio.ensure_future(_await(ws.__anext__()))
    await asyncio.sleep(0)
    deliver(t, "kept", 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deliver(t, "next", 1)
    assert [m async for m in _take(ws, 2)] == ["kept", "next"]


async def test_async_for_ends_and_recv_raises_when_closed_while_waiting() -> None:
    ws, t, _ = make_ws()
    it = asyncio.ensure_future(_collect(ws))
    await asyncio.sleep(0)
    deliver(t, "x", 1)
    await asyncio.sleep(0)
    t._on_peer_close(1000, "bye")
    t._on_ended()
    assert await it == ["x"]
    with pytest.raises(ConnectionClosedOK):
        await ws.recv()

    for how in ("iterate", "recv"):
        ws, t, _ = make_ws()
        waiting = asyncio.ensure_future(_collect(ws) if how == "iterate" else ws.recv())
        await asyncio.sleep(0)
        t._on_ended()  # no close frame: 1006
        with pytest.raises(ConnectionClosedError):
            await waiting


async def _take(ws: WebSocket, n: int) -> Any:
    for _ in range(n):
        yield await ws.recv()


async def _collect(ws: WebSocket) -> list[Any]:
    return [m async for m in ws]
