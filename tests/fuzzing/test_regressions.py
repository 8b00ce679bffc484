"""One test per fuzzing crasher (tests/vectors/fuzz/HARNESS/FILE): the input now gets its specific qsafe error.

Each crasher also runs through its whole harness in test_fuzz.py; here the parser it broke is called directly
and the exact error class (hence exit code) is asserted.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from qsafe import model_evidence
from qsafe._hashing.safetensors import read_header
from qsafe.bundle import manifest_from_statement
from qsafe.errors import FormatError, UsageError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "fuzz"


def test_resource_digest_with_a_final_newline_is_a_format_error() -> None:
    # `^[0-9a-f]+$` matched "…\n" (63 hex digits and a newline, 64 characters): Manifest.root_digest then raised
    # ValueError from bytes.fromhex (exit 1). A signed statement is as hostile as its signer.
    statement = json.loads((VECTORS / "bundle" / "resource-digest-final-newline.statement.json").read_bytes())
    with pytest.raises(FormatError, match="hex digest"):
        manifest_from_statement(statement)


@pytest.mark.parametrize("field", ["header", "digest"])
def test_tensor_annotation_digests_with_a_final_newline_are_format_errors(field: str) -> None:
    statement = json.loads((Path(__file__).resolve().parents[2] / "fuzz" / "seeds" / "bundle" /
                            "ml-dsa-65.statement.json").read_bytes())
    resource = next(r for r in statement["predicate"]["resources"] if "annotations" in r)
    ann = resource["annotations"]["qsafe.safetensors.v1"]
    if field == "header":
        ann["header"] += "\n"
    else:
        ann["tensors"][0]["digest"] += "\n"
    with pytest.raises(FormatError):
        manifest_from_statement(statement)


def test_safetensors_dtype_with_a_final_newline_is_a_format_error() -> None:
    data = (VECTORS / "safetensors" / "dtype-final-newline.safetensors").read_bytes()
    with pytest.raises(FormatError, match="invalid dtype"):
        read_header(io.BytesIO(data), len(data))


def test_model_digest_with_a_final_newline_is_refused() -> None:
    with pytest.raises(UsageError, match="model digest"):
        model_evidence.statement_for("sha256:" + "ab" * 32 + "\n", model_evidence.ROBUSTNESS_EVALUATION, {})
