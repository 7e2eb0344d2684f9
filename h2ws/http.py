"""HTTP data structures shared by both HTTP versions: headers, request, response."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["Headers", "Request", "Response"]


class Headers:
    """An ordered, case-insensitive multi-map of header names to values.

    Names are stored lower-cased (HTTP/2 requires it on the wire); values are str
    (decoded as latin-1, which round-trips any byte).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(k.lower(), v) for k, v in items]

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        h = cls()
        h._items = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
        return h

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        name = name.lower()
        for k, v in self._items:
            if k == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, in order."""
        name = name.lower()
        return [v for k, v in self._items if k == name]

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._items))

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        """All (name, value) pairs, in order, with repeated names."""
        return list(self._items)

    def add(self, name: str, value: str) -> None:
        self._items.append((name.lower(), value))

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass
class Request:
    """The request that opened a WebSocket (or an HTTP request).

    Over HTTP/2 `method` is "CONNECT" and `protocol` "websocket" (RFC 8441);
    over HTTP/1.1 `method` is "GET". `authority` is `:authority` or `Host`.
    """

    path: str
    headers: Headers
    method: str = "GET"
    authority: str = ""
    scheme: str = "http"
    protocol: str | None = None
    http_version: str = "2"


@dataclass
class Response:
    """An HTTP response that refuses a WebSocket (from ``process_request``)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 999:
            raise ValueError(f"invalid status {self.status}")
