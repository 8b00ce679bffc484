"""One harness per parser. Each module defines ``test_one_input(data: bytes) -> None``.

A harness imports every qsafe module it reaches at module level (so the driver can instrument them) and never
imports atheris, so the regression tests run the very same code without the fuzzer. A :class:`qsafe.errors.
QsafeError` is the expected outcome of a hostile input; the driver treats every other exception as a crash.
"""

HARNESSES = (
    "bundle", "safetensors", "age", "tar", "fl_update", "fl_aggregate", "he_context", "evidence", "spdm", "snp",
    "tdx", "policy", "audit_log", "keys", "model_evidence", "result", "certificates",
)
