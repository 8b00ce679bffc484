"""NIST's AES-256 CTR_DRBG as the PQC submissions' ``rng.c`` defines it (no derivation function), for KATs."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class NistKatDrbg:
    """``randombytes_init(entropy, NULL, 256)`` / ``randombytes(n)`` of the NIST PQC KAT generator."""

    def __init__(self, entropy: bytes) -> None:
        if len(entropy) != 48:
            raise ValueError("entropy input is 48 bytes")
        self.key, self.v = bytes(32), bytes(16)
        self._update(entropy)

    def _block(self) -> bytes:
        self.v = ((int.from_bytes(self.v, "big") + 1) % (1 << 128)).to_bytes(16, "big")
        enc = Cipher(algorithms.AES(self.key), modes.ECB()).encryptor()
        return enc.update(self.v) + enc.finalize()

    def _update(self, provided: bytes | None) -> None:
        temp = b"".join(self._block() for _ in range(3))
        if provided is not None:
            temp = bytes(a ^ b for a, b in zip(temp, provided))
        self.key, self.v = temp[:32], temp[32:]

    def __call__(self, length: int) -> bytes:
        out = bytearray()
        while len(out) < length:
            out += self._block()
        self._update(None)
        return bytes(out[:length])
