"""What ``serve()`` and ``connect()`` share: an object used either as
``x = await opener(...)`` or as ``async with opener(...) as x``."""

from __future__ import annotations

import abc
from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["AsyncOpener"]

T = TypeVar("T")


class AsyncOpener(abc.ABC, Generic[T]):
    """``await`` it for the opened object, or ``async with`` it to have the
    object closed (``_close``) when the block ends, however it ends."""

    @abc.abstractmethod
    async def _open(self) -> T:
        """Opens the object; what ``await`` and ``async with`` give."""

    @abc.abstractmethod
    async def _close(self, opened: T) -> None:
        """Closes what ``_open`` gave, at the end of ``async with``."""

    def __await__(self) -> Generator[Any, None, T]:
        return self._open().__await__()

    async def __aenter__(self) -> T:
        self._opened = await self._open()
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(self._opened)
