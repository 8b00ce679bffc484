"""The one hardened JSON reader: every JSON document qsafe reads goes through :func:`loads` or :func:`load_file`.

Python's :func:`json.loads` accepts what RFC 8259 leaves open or forbids, and what an attacker can use:
``NaN``/``Infinity`` (not JSON; they poison sums and break canonical re-serialisation), unbounded integers
(a 5,000-digit number costs quadratic time, ``10**400`` overflows ``float()``), unbounded nesting
(``RecursionError`` in every recursive consumer), duplicate keys (two parsers read two different documents),
lone surrogates (``\\ud800`` decodes to a string no UTF-8 encoder accepts), and UTF-16/32 byte input. Here each
of those is a :class:`~qsafe.errors.FormatError` (exit 3) that names the input. Limits come from
:mod:`qsafe._limits`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from typing import Any

from qsafe import _limits
from qsafe._files import read_regular
from qsafe.errors import FormatError

__all__ = ["load_file", "loads", "parse_time"]

_SURROGATE_ESCAPE_B = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_S = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(ValueError):
    """Raised inside the decoder's hooks; turned into a FormatError naming the input."""


def _parse_int(text: str) -> int:
    if len(text) > _limits.JSON_MAX_NUMBER_CHARS:
        raise _Refused(f"an integer of {len(text)} characters (at most {_limits.JSON_MAX_NUMBER_CHARS})")
    value = int(text)
    if not _limits.JSON_MIN_INT <= value <= _limits.JSON_MAX_INT:
        raise _Refused(f"the integer {text} is out of range (64-bit integers only)")
    return value


def _parse_float(text: str) -> float:
    if len(text) > _limits.JSON_MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text)} characters (at most {_limits.JSON_MAX_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text} is out of range (not a finite double)")
    return value


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _Refused(f"duplicate key {dup!r} in an object (two readers could see two documents)")
    return doc


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant,
    strict=True,
)


def _check_tree(doc: Any, max_depth: int, strings: bool) -> None:
    """Refuse nesting deeper than ``max_depth``; with ``strings``, refuse lone surrogates in keys and values."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
            if strings:
                for key in node:
                    if _SURROGATE.search(key):
                        raise _Refused(f"a lone surrogate in the key {key!r}")
        elif isinstance(node, list):
            children = node
        elif strings and isinstance(node, str) and _SURROGATE.search(node):
            raise _Refused(f"a lone surrogate in the string {node[:40]!r}")
        else:
            continue
        if depth > max_depth:
            raise _Refused(f"nesting deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)) or (strings and isinstance(child, str)))


def loads(data: bytes | str, what: str, *, max_bytes: int = _limits.JSON_MAX_BYTES,
          max_depth: int = _limits.JSON_MAX_DEPTH) -> Any:
    """Parse one JSON document (UTF-8 bytes or text) with every hardening of this module.

    Args:
        data: the document.
        what: what it is, for messages: name the file ("bundle model.sig", "policy p.json").
        max_bytes: size cap of ``data``.
        max_depth: nesting cap (arrays and objects).

    Returns:
        The parsed document (dicts, lists, str, int, float, bool, None).

    Raises:
        FormatError: too large, not UTF-8, not JSON, or any refused construct; the message names ``what``.
    """
    if len(data) > max_bytes:
        raise FormatError(f"{what} is larger than {max_bytes} bytes")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        escapes = _SURROGATE_ESCAPE_B.search(raw) is not None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{what} is not JSON: not UTF-8 (invalid byte at offset {exc.start})") from None
    else:
        text = data
        escapes = _SURROGATE_ESCAPE_S.search(text) is not None or _SURROGATE.search(text) is not None
    try:
        doc = _DECODER.decode(text)
        nested = text.count("[") + text.count("{") > max_depth
        if nested or escapes:
            _check_tree(doc, max_depth, escapes)
    except _Refused as exc:
        raise FormatError(f"{what} is not JSON qsafe accepts: {exc}") from None
    except RecursionError:
        raise FormatError(f"{what} is not JSON qsafe accepts: nesting deeper than {max_depth} levels") from None
    except ValueError as exc:  # json.JSONDecodeError, int() beyond sys.get_int_max_str_digits
        raise FormatError(f"{what} is not JSON: {exc}") from None
    return doc


def load_file(path: str | os.PathLike[str], what: str, *, max_bytes: int = _limits.JSON_MAX_BYTES,
              max_depth: int = _limits.JSON_MAX_DEPTH) -> Any:
    """Read a regular file (never a FIFO or device, never more than ``max_bytes``) and parse it with :func:`loads`.

    Args:
        path: the file.
        what: what it is ("policy", "evidence"); messages say ``{what} {path}``.
        max_bytes: size cap.
        max_depth: nesting cap.

    Raises:
        FormatError: unreadable, not a regular file, too large, or refused JSON.
    """
    data = read_regular(path, what, max_bytes=max_bytes)
    return loads(data, f"{what} {os.fsdecode(path)}", max_bytes=max_bytes, max_depth=max_depth)


def parse_time(text: Any, what: str = "") -> dt.datetime:
    """Parse an ISO-8601 time into an aware UTC datetime; a naive time is taken as UTC.

    Times whose UTC value falls outside ``[TIME_MIN_YEAR, TIME_MAX_YEAR)`` are refused, so adding or
    subtracting any realistic duration can never overflow.

    Raises:
        FormatError: not a string, not ISO-8601, or out of range.
    """
    prefix = f"{what}: " if what else ""
    if not isinstance(text, str) or len(text) > 64:
        raise FormatError(f"{prefix}not an ISO-8601 time: {str(text)[:64]!r}")
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FormatError(f"{prefix}not an ISO-8601 time: {text!r}") from None
    try:
        value = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    except OverflowError:
        value = dt.datetime.min.replace(tzinfo=dt.timezone.utc)  # before year 1: out of range below
    if not _limits.TIME_MIN_YEAR <= value.year < _limits.TIME_MAX_YEAR:
        raise FormatError(f"{prefix}the time {text!r} is out of range (years {_limits.TIME_MIN_YEAR} to "
                          f"{_limits.TIME_MAX_YEAR - 1} UTC)")
    return value
