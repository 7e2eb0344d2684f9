"""The read buffer that the connections on one event loop share."""

from __future__ import annotations

import asyncio
import weakref

__all__ = ["READ_BUFFER", "read_buffer"]

#: The most bytes one read brings in.
READ_BUFFER = 256 * 1024

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = (
    weakref.WeakKeyDictionary()
)


def read_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    """The read buffer for a connection on `loop`, server or client.

    A connection's bytes are parsed within ``buffer_updated`` (the core
    borrows them for the call, or they are copied first) and the transports
    read into the buffer right before calling it, so one buffer serves every
    connection on the loop: a zero-filled 256 KiB buffer per connection would
    be resident memory, the largest cost of an idle connection. The proactor
    loop (Windows) reads into the buffers of several connections at once, so
    there each connection gets its own.
    """
    proactor = getattr(asyncio, "ProactorEventLoop", None)
    if proactor is not None and isinstance(loop, proactor):
        return memoryview(bytearray(READ_BUFFER))
    view = _by_loop.get(loop)
    if view is None:
        view = _by_loop[loop] = memoryview(bytearray(READ_BUFFER))
    return view
