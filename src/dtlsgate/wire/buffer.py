"""Bounded byte Reader and length-owning Writer.

Every parse in dtlsgate goes through a ``Reader``: reads never run past the reader's end,
a vector is read through a sub-reader of exactly its declared length, both bounds of a
vector (``<min..max>``, RFC 8446 §3.4) are checked, and ``finish()`` rejects trailing
bytes. Every failure is a ``DecodeError`` (alert decode_error), never another exception.

A ``Writer`` owns length prefixes: ``with w.prefixed(2): ...`` writes the body, then
the length in front of it, and checks that it fits. Integers are range-checked.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from dtlsgate.errors import DecodeError, UsageError

_MAX_BY_WIDTH = {
    1: 0xFF,
    2: 0xFFFF,
    3: 0xFFFFFF,
    4: 0xFFFFFFFF,
    6: 0xFFFFFFFFFFFF,
    8: (1 << 64) - 1,
}

_unpack_type_and_length = struct.Struct(">HH").unpack_from
_U16 = struct.Struct(">H")


class Reader:
    """Reads big-endian integers and vectors from ``data[start:end]``, never beyond."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = start
        if end is None and not start:
            self._end = len(data)  # the whole buffer (every message body): nothing to check
        else:
            self._end = len(data) if end is None else end
            if not 0 <= start <= self._end <= len(data):
                raise UsageError("reader bounds outside the buffer")

    @property
    def position(self) -> int:
        """Offset in the underlying buffer of the next byte to read."""
        return self._pos

    def remaining(self) -> int:
        return self._end - self._pos

    def at_end(self) -> bool:
        return self._pos == self._end

    def _take(self, n: int) -> int:
        pos = self._pos
        if n > self._end - pos:
            raise DecodeError(f"truncated: need {n} bytes, {self._end - pos} left")
        self._pos = pos + n
        return pos

    def uint(self, width: int) -> int:
        pos = self._take(width)
        return int.from_bytes(self._data[pos : pos + width], "big")

    def u8(self) -> int:
        pos = self._pos
        if pos >= self._end:
            raise DecodeError("truncated: need 1 byte, 0 left")
        self._pos = pos + 1
        return self._data[pos]

    def u16(self) -> int:
        pos = self._pos
        if self._end - pos < 2:
            raise DecodeError(f"truncated: need 2 bytes, {self._end - pos} left")
        self._pos = pos + 2
        d = self._data
        return (d[pos] << 8) | d[pos + 1]

    def u24(self) -> int:
        return self.uint(3)

    def u32(self) -> int:
        return self.uint(4)

    def u48(self) -> int:
        return self.uint(6)

    def u64(self) -> int:
        return self.uint(8)

    def unpack(self, fields: struct.Struct) -> tuple[Any, ...]:
        """The next ``fields.size`` bytes as ``fields`` lays them out (fixed-size headers
        in one call)."""
        pos = self._pos
        if fields.size > self._end - pos:
            raise DecodeError(f"truncated: need {fields.size} bytes, {self._end - pos} left")
        self._pos = pos + fields.size
        return fields.unpack_from(self._data, pos)

    def read(self, n: int) -> bytes:
        pos = self._take(n)
        return bytes(self._data[pos : pos + n])

    def rest(self) -> bytes:
        """All remaining bytes (the reader is then at its end)."""
        return self.read(self.remaining())

    def sub(self, n: int) -> Reader:
        """A reader over exactly the next ``n`` bytes; this reader moves past them."""
        pos = self._take(n)
        return Reader(self._data, pos, pos + n)

    def _span(self, prefix: int, minimum: int, maximum: int | None) -> tuple[int, int]:
        """Read a ``prefix``-byte length within ``<minimum..maximum>`` and move past the
        vector it announces; return where the vector's body lies in the buffer. (Without
        ``maximum``, the length's width is the only bound.)"""
        data, pos, end = self._data, self._pos, self._end
        start = pos + prefix
        if start > end:
            raise DecodeError(f"truncated: need {prefix} bytes, {end - pos} left")
        if prefix == 1:
            n = data[pos]
        elif prefix == 2:
            n = (data[pos] << 8) | data[pos + 1]
        else:
            n = int.from_bytes(data[pos:start], "big")
        stop = start + n
        if n < minimum or (maximum is not None and n > maximum) or stop > end:
            self._reject_length(prefix, n, minimum, maximum, end - start)
        self._pos = stop
        return start, stop

    @staticmethod
    def _reject_length(
        prefix: int, n: int, minimum: int, maximum: int | None, left: int
    ) -> NoReturn:
        top = _MAX_BY_WIDTH[prefix] if maximum is None else maximum
        if n < minimum or n > top:
            raise DecodeError(f"vector length {n} outside <{minimum}..{top}>")
        raise DecodeError(f"truncated: need {n} bytes, {left} left")

    def vector(self, prefix: int, minimum: int = 0, maximum: int | None = None) -> bytes:
        """An opaque vector ``<minimum..maximum>`` with a ``prefix``-byte length."""
        start, stop = self._span(prefix, minimum, maximum)
        return bytes(self._data[start:stop])

    def prefixed(self, prefix: int, minimum: int = 0, maximum: int | None = None) -> Reader:
        """A sub-reader over a length-prefixed vector ``<minimum..maximum>``."""
        start, stop = self._span(prefix, minimum, maximum)
        return Reader(self._data, start, stop)

    def u8_list(self, prefix: int, minimum: int = 0, maximum: int | None = None) -> list[int]:
        """A vector of uint8 values."""
        return list(self.vector(prefix, minimum, maximum))

    def u16_list(
        self, prefix: int, minimum: int = 0, maximum: int | None = None
    ) -> tuple[int, ...]:
        """A vector of uint16 values, as the tuple the messages keep; an odd byte length is
        a decode error."""
        start, stop = self._span(prefix, minimum, maximum)
        if (stop - start) % 2:
            raise DecodeError("uint16 vector with an odd length")
        # One unpack for the whole vector (cipher suites, groups, signature schemes).
        return struct.unpack_from(f">{(stop - start) // 2}H", self._data, start)

    def typed_vectors(self, prefix: int) -> list[tuple[int, bytes]]:
        """A vector with a ``prefix``-byte length whose body is entries of ``uint16 type;
        opaque data<0..2^16-1>`` filling it exactly (an extensions block, RFC 8446 §4.2),
        in order. Each entry's header and body are checked against the vector's end before
        use."""
        pos, end = self._span(prefix, 0, None)
        data = self._data
        if type(data) is not bytes:
            data = bytes(data)  # so that each body below is sliced out as bytes
        entries: list[tuple[int, bytes]] = []
        append = entries.append
        # While a whole 4-byte entry header fits; a shorter rest is truncated (below).
        while end - pos >= 4:
            entry_type, n = _unpack_type_and_length(data, pos)
            start = pos + 4
            pos = start + n
            if pos > end:
                raise DecodeError(f"truncated: need {n} bytes, {end - start} left")
            append((entry_type, data[start:pos]))
        if pos != end:
            raise DecodeError(f"truncated: need 4 bytes, {end - pos} left")
        return entries

    def finish(self) -> None:
        """Require that everything was consumed (no trailing bytes)."""
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} trailing bytes")


def whole_vector(data: bytes, prefix: int, minimum: int = 0, maximum: int | None = None) -> bytes:
    """The body of ``data`` when all of it is one vector ``<minimum..maximum>`` with a
    ``prefix``-byte length (an extension body that is a single list): the length must
    account for exactly the bytes after it. Without a Reader object, as each ClientHello
    has several such bodies."""
    n = len(data) - prefix
    if n < 0:
        raise DecodeError(f"truncated: need {prefix} bytes, {len(data)} left")
    if prefix == 1:
        declared = data[0]
    elif prefix == 2:
        declared = (data[0] << 8) | data[1]
    else:
        declared = int.from_bytes(data[:prefix], "big")
    if declared != n:
        raise DecodeError(f"vector length {declared} does not match the {n} bytes after it")
    if n < minimum or (maximum is not None and n > maximum):
        raise DecodeError(f"vector length {n} outside <{minimum}..{maximum}>")
    return bytes(data[prefix:])


def _outside(prefix: int, n: int, minimum: int, maximum: int | None) -> UsageError:
    top = _MAX_BY_WIDTH[prefix] if maximum is None else maximum
    return UsageError(f"vector of {n} bytes outside <{minimum}..{top}>")


def encode_vector(prefix: int, data: bytes, minimum: int = 0, maximum: int | None = None) -> bytes:
    """The opaque vector ``data`` ``<minimum..maximum>`` with its ``prefix``-byte length in
    front (`Writer.vector` without a Writer, for a message encoded in one expression)."""
    n = len(data)
    if n < minimum or (maximum is not None and n > maximum):
        raise _outside(prefix, n, minimum, maximum)
    try:
        # to_bytes rejects a length that does not fit in the prefix (the width's bound).
        return n.to_bytes(prefix, "big") + data
    except OverflowError:
        raise _outside(prefix, n, minimum, maximum) from None


def encode_u16(value: int) -> bytes:
    """``value`` as a big-endian uint16 (`Writer.u16` without a Writer, for a message
    encoded in one expression)."""
    try:
        return _U16.pack(value)
    except struct.error:
        raise UsageError(f"{value} does not fit in 2 bytes") from None


class Writer:
    """Appends big-endian integers and vectors; owns the length prefixes."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def uint(self, width: int, value: int) -> None:
        if not 0 <= value <= _MAX_BY_WIDTH[width]:
            raise UsageError(f"{value} does not fit in {width} bytes")
        self._buf += value.to_bytes(width, "big")

    # u8 and u16 leave the range check to bytearray.append and struct.pack (each rejects a
    # value that does not fit): one check instead of two on every field written.
    def u8(self, value: int) -> None:
        try:
            self._buf.append(value)
        except ValueError:
            raise UsageError(f"{value} does not fit in 1 byte") from None

    def u16(self, value: int) -> None:  # `encode_u16`'s rule, written in: a Writer's hot call
        try:
            self._buf += _U16.pack(value)
        except struct.error:
            raise UsageError(f"{value} does not fit in 2 bytes") from None

    def u24(self, value: int) -> None:
        self.uint(3, value)

    def u32(self, value: int) -> None:
        self.uint(4, value)

    def u48(self, value: int) -> None:
        self.uint(6, value)

    def u64(self, value: int) -> None:
        self.uint(8, value)

    def write(self, data: bytes) -> None:
        self._buf += data

    def vector(
        self, prefix: int, data: bytes, minimum: int = 0, maximum: int | None = None
    ) -> None:
        self._buf += encode_vector(prefix, data, minimum, maximum)

    def u8_list(self, prefix: int, values: list[int] | tuple[int, ...]) -> None:
        try:
            body = bytes(values)
        except ValueError:
            raise UsageError(f"a value of {values!r} does not fit in 1 byte") from None
        self.vector(prefix, body)

    def u16_list(self, prefix: int, values: list[int] | tuple[int, ...]) -> None:
        try:
            body = struct.pack(f">{len(values)}H", *values)
        except struct.error:
            raise UsageError(f"a value of {values!r} does not fit in 2 bytes") from None
        self.vector(prefix, body)

    @contextmanager
    def prefixed(self, prefix: int, minimum: int = 0, maximum: int | None = None) -> Iterator[None]:
        """Write the body inside the ``with``; its length is put in front afterwards."""
        start = len(self._buf)
        self._buf += bytes(prefix)
        yield
        n = len(self._buf) - start - prefix
        top = _MAX_BY_WIDTH[prefix] if maximum is None else maximum
        if not minimum <= n <= top:
            raise UsageError(f"vector of {n} bytes outside <{minimum}..{top}>")
        self._buf[start : start + prefix] = n.to_bytes(prefix, "big")
