"""HTTP data structures shared by both HTTP versions: headers, request, response."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["Headers", "Request", "Response"]

#: Header names as received -> lower-cased str, shared by every Headers
#: (a request that holds its WebSocket open keeps them). Bounded: past the
#: limit, names are decoded per request.
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 512


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
        names = _NAMES
        items = []
        for k, v in raw:
            name = names.get(k)
            if name is None:
                name = sys.intern(k.decode("latin-1").lower())
                if len(names) < _NAMES_MAX:
                    names[k] = name
            items.append((name, v.decode("latin-1")))
        h = cls()
        h._items = items
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


_PSEUDO = {
    b":path": "_path",
    b":method": "_method",
    b":authority": "_authority",
    b":scheme": "_scheme",
    b":protocol": "_protocol",
}


def pack_headers(raw: list[tuple[bytes, bytes]]) -> bytes | None:
    """The fields of a request head as one ``bytes`` (names and values
    separated by NUL), or None if a field holds a NUL itself.

    One object instead of a list of tuples of two ``bytes`` each (~1 KB for a
    typical WebSocket request): requests keep this until their headers are
    first read. HTTP/2 forbids NUL in field names and values (RFC 9113
    section 8.2.1), so the None case is for other sources.
    """
    packed = b"\0".join([b for field in raw for b in field])
    if packed.count(0) != 2 * len(raw) - 1 and raw:
        return None
    return packed


def unpack_headers(packed: bytes) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs of ``pack_headers()``'s result."""
    if not packed:
        return []
    parts = packed.split(b"\0")
    return list(zip(parts[::2], parts[1::2], strict=True))


class Request:
    """The request that opened a WebSocket (or an HTTP request).

    Over HTTP/2 `method` is "CONNECT" and `protocol` "websocket" (RFC 8441);
    over HTTP/1.1 `method` is "GET". `authority` is `:authority` or `Host`.

    A request made by the server keeps its head as received (one ``bytes``,
    see ``pack_headers``) and decodes it on the first read of an attribute:
    an idle WebSocket whose handler never looks at its request costs one
    small object.
    """

    __slots__ = (
        "_path",
        "_method",
        "_authority",
        "_scheme",
        "_protocol",
        "http_version",
        "_headers",
        "_packed",
    )

    def __init__(
        self,
        path: str,
        headers: Headers,
        method: str = "GET",
        authority: str = "",
        scheme: str = "http",
        protocol: str | None = None,
        http_version: str = "2",
    ) -> None:
        self._path = path
        self._headers: Headers | None = headers
        self._method = method
        self._authority = authority
        self._scheme = scheme
        self._protocol = protocol
        self.http_version = http_version
        self._packed: bytes | None = None

    @classmethod
    def from_h2(cls, packed: bytes) -> Request:
        """A request from an HTTP/2 head (pseudo-headers first) packed by
        ``pack_headers``, decoded when first read."""
        self = cls.__new__(cls)
        self._packed = packed
        self.http_version = "2"
        return self

    def _unpack(self) -> None:
        packed = self._packed
        assert packed is not None
        self._path = self._method = self._authority = self._scheme = ""
        self._protocol = None
        regular: list[tuple[bytes, bytes]] = []
        for name, value in unpack_headers(packed):
            if name[:1] == b":":
                slot = _PSEUDO.get(name)
                if slot is not None:
                    setattr(self, slot, value.decode("latin-1"))
            else:
                regular.append((name, value))
        self._headers = Headers.from_raw(regular)
        self._packed = None

    @property
    def path(self) -> str:
        if self._packed is not None:
            self._unpack()
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        if self._packed is not None:
            self._unpack()
        self._path = value

    @property
    def headers(self) -> Headers:
        if self._packed is not None:
            self._unpack()
        assert self._headers is not None
        return self._headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        if self._packed is not None:
            self._unpack()
        self._headers = value

    @property
    def method(self) -> str:
        if self._packed is not None:
            self._unpack()
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        if self._packed is not None:
            self._unpack()
        self._method = value

    @property
    def authority(self) -> str:
        if self._packed is not None:
            self._unpack()
        return self._authority

    @authority.setter
    def authority(self, value: str) -> None:
        if self._packed is not None:
            self._unpack()
        self._authority = value

    @property
    def scheme(self) -> str:
        if self._packed is not None:
            self._unpack()
        return self._scheme

    @scheme.setter
    def scheme(self, value: str) -> None:
        if self._packed is not None:
            self._unpack()
        self._scheme = value

    @property
    def protocol(self) -> str | None:
        if self._packed is not None:
            self._unpack()
        return self._protocol

    @protocol.setter
    def protocol(self, value: str | None) -> None:
        if self._packed is not None:
            self._unpack()
        self._protocol = value

    def _fields(self) -> tuple[object, ...]:
        return (
            self.path,
            self.headers,
            self.method,
            self.authority,
            self.scheme,
            self.protocol,
            self.http_version,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Request)
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        return (
            f"Request(path={self.path!r}, headers={self.headers!r}, method={self.method!r}, "
            f"authority={self.authority!r}, scheme={self.scheme!r}, "
            f"protocol={self.protocol!r}, http_version={self.http_version!r})"
        )


@dataclass
class Response:
    """An HTTP response that refuses a WebSocket (from ``process_request``)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 999:
            raise ValueError(f"invalid status {self.status}")
