"""Bech32 (BIP 173 checksum, not bech32m) without the 90-character limit, as age uses it for keys.

age encodes X25519 recipients as ``age1…``, hybrid recipients as ``age1pq1…`` (1,216-byte keys, so no length
limit), and identities upper-cased (``AGE-SECRET-KEY-1…``, ``AGE-SECRET-KEY-PQ-1…``).
"""

from __future__ import annotations

from qsafe.errors import KeyFileError

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (to_bits - bits)) & maxv)
    elif not pad and (bits >= from_bits or (acc << (to_bits - bits)) & maxv):
        raise KeyFileError("invalid bech32 padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under human-readable part ``hrp`` (lower case)."""
    values = _convert(data, 8, 5, True)
    polymod = _polymod(_hrp_expand(hrp) + values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)


def decode(text: str) -> tuple[str, bytes]:
    """Decode a bech32 string (all lower or all upper case).

    Returns:
        ``(hrp, data)`` with ``hrp`` in lower case.

    Raises:
        KeyFileError: mixed case, bad characters or a bad checksum.
    """
    if text.lower() != text and text.upper() != text:
        raise KeyFileError("mixed-case bech32 string")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise KeyFileError("malformed bech32 string")
    hrp, rest = text[:pos], text[pos + 1 :]
    if any(c not in _CHARSET for c in rest):
        raise KeyFileError("invalid character in bech32 string")
    values = [_CHARSET.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise KeyFileError("bad bech32 checksum (mistyped key?)")
    return hrp, bytes(_convert(values[:-6], 5, 8, False))
