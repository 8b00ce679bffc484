"""Terminal safety: untrusted names (files of a model folder, tensor names, ``model_name`` of an unverified bundle,
client ids, certificate subjects) never reach a terminal raw.

An ESC sequence in a file name can retitle the terminal, move the cursor and overwrite lines already printed
(such as the ``extra:`` line of a mismatch); a carriage return or line separator can forge a line; bidi controls
can reorder what is shown. :func:`printable` escapes every such character as ``\\xNN`` / ``\\uNNNN`` (a byte of
a non-UTF-8 file name, carried by Python as a lone surrogate, shows as ``\\xNN``). Human-readable output goes
through it; ``--json`` output stays exact (JSON escapes control characters itself).
"""

from __future__ import annotations

import re

__all__ = ["printable", "printable_lines"]

# C0 controls (tab included), DEL, C1 controls, line/paragraph separators, bidi and other invisible format
# controls, byte-order mark, lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
                     "\ufff9-\ufffb\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the raw byte of a non-UTF-8 name
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``str(text)`` with every control, separator and invisible format character escaped (one line, always)."""
    return _UNSAFE.sub(_escape, str(text))


def printable_lines(text: str) -> list[str]:
    """Split a message into its lines at ``\\n`` only, then make each line :func:`printable`."""
    return [printable(line) for line in text.split("\n")]
