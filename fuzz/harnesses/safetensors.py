"""safetensors: the bounded header parser, the one-pass tensor digests, and the verified loader to numpy arrays.

The input is a whole safetensors file. The loader is given the file's own digest, as a signed manifest would
(a hostile *signer*: a header that parses must still load within bounds).
"""

from __future__ import annotations

import hashlib
import io

from fuzz._common import memfile
from qsafe._hashing.safetensors import digest_safetensors, read_header
from qsafe._hashing.tensorload import read_verified, to_arrays
from qsafe.errors import FormatError


def test_one_input(data: bytes) -> None:
    try:
        read_header(io.BytesIO(data), len(data))
    except FormatError:
        return
    with memfile(data) as path:
        digest_safetensors(path, "sha256", whole_file=True)
        pairs = read_verified(path, None, file_digest=hashlib.sha256(data).hexdigest())
        to_arrays(pairs, "numpy", None)
