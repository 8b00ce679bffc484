"""Every bound qsafe puts on what it reads, in one place.

``sign``, ``verify``, ``load`` and the other commands all take their limits from here, so ``sign`` never writes
what ``verify`` would refuse. docs/security.md lists these values (a test checks that the two agree).
A limit is a refusal (exit 3, :class:`~qsafe.errors.FormatError`), never a truncation.
"""

from __future__ import annotations

__all__ = [
    "AGE_ARMOR_MAX_WHITESPACE",
    "AGE_HEADER_MAX_BYTES",
    "AGE_HEADER_MAX_LINE",
    "AGE_SCRYPT_MAX_WORK_FACTOR",
    "ARCHIVE_MAX_DEPTH",
    "ARCHIVE_MAX_NAME_BYTES",
    "ATTESTATION_MAX_CACHED_LINKS",
    "AUDIT_LINE_MAX_BYTES",
    "BUNDLE_MAX_BYTES",
    "CERTIFICATE_CHAIN_MAX_LENGTH",
    "CERTIFICATE_FILE_MAX_BYTES",
    "DATASET_CSV_MAX_BYTES",
    "DATASET_LEAVES_MAX_BYTES",
    "DATASET_STATEMENT_MAX_BYTES",
    "EVIDENCE_MAX_BYTES",
    "FL_CONTAINER_MAX_BLOBS",
    "FL_CONTAINER_MAX_BLOB_BYTES",
    "FL_CONTAINER_MAX_HEADER_BYTES",
    "FL_CONTAINER_MAX_SIGNATURE_BYTES",
    "FL_CONTEXT_MAX_BYTES",
    "FL_MAX_CLIENTS",
    "FL_MAX_TENSORS",
    "FL_MAX_VALUES",
    "FL_UPDATE_MAX_BYTES",
    "JSON_MAX_BYTES",
    "JSON_MAX_DEPTH",
    "JSON_MAX_INT",
    "JSON_MAX_NUMBER_CHARS",
    "JSON_MIN_INT",
    "KEY_FILE_MAX_BYTES",
    "LOAD_KEEP_MAX_BYTES",
    "MODEL_EVIDENCE_MAX_BYTES",
    "MODEL_EVIDENCE_MAX_CLAIMS",
    "MODEL_EVIDENCE_MAX_DEPTH",
    "MODEL_MAX_DEPTH",
    "MODEL_MAX_FILES",
    "MODEL_MAX_RESOURCES",
    "MODEL_MAX_SHARD_SIZE",
    "MODEL_MAX_TENSORS",
    "PIPELINE_CONFIG_MAX_BYTES",
    "POLICY_MAX_BYTES",
    "RESULT_MAX_BYTES",
    "SAFETENSORS_MAX_HEADER_BYTES",
    "SAFETENSORS_MAX_METADATA_ENTRIES",
    "SAFETENSORS_MAX_NAME_BYTES",
    "SAFETENSORS_MAX_NDIM",
    "SAFETENSORS_MAX_TENSORS",
    "SIGSTORE_TRUST_MAX_BYTES",
    "TIME_MAX_YEAR",
    "TIME_MIN_YEAR",
    "all_limits",
]

# --- JSON (qsafe/_json.py) ------------------------------------------------------------------------------------
#: Default size cap of a JSON document read whole (inputs with their own cap use it instead).
JSON_MAX_BYTES = 16 << 20
#: Nesting of arrays and objects. qsafe's own documents nest at most ~8 deep.
JSON_MAX_DEPTH = 64
#: The smallest integer a JSON input may hold. Integers are int64 or uint64: nothing qsafe reads needs more, and a 5,000-digit number costs quadratic time.
JSON_MIN_INT = -(1 << 63)
#: The largest integer a JSON input may hold (uint64).
JSON_MAX_INT = (1 << 64) - 1
#: Characters of one number literal (a float with 17 significant digits and an exponent needs ~25).
JSON_MAX_NUMBER_CHARS = 64

# --- files read whole -----------------------------------------------------------------------------------------
#: A signature bundle (model.sig); the largest real ones (many thousands of files and tensors) are a few MB.
BUNDLE_MAX_BYTES = 256 << 20
#: An evidence document (GPU reports, certificate chains, TDX collateral).
EVIDENCE_MAX_BYTES = 16 << 20
#: An attestation policy.
POLICY_MAX_BYTES = 1 << 20
#: A signed appraisal result (DSSE envelope).
RESULT_MAX_BYTES = 16 << 20
#: One line of a federated audit log.
AUDIT_LINE_MAX_BYTES = 16 << 20
#: A PEM file of trusted or signing certificates (--certificate, --certificate-chain).
CERTIFICATE_FILE_MAX_BYTES = 4 << 20
#: Certificates in a bundle's x509CertificateChain (leaf and issuers).
CERTIFICATE_CHAIN_MAX_LENGTH = 10
#: A Sigstore trust root or client trust configuration (--trust-config); the production root is ~10 KB.
SIGSTORE_TRUST_MAX_BYTES = 8 << 20

# --- safetensors headers (sign, verify, load, inspect read them alike) ----------------------------------------
#: Bytes of one header (the safetensors reference implementation's cap).
SAFETENSORS_MAX_HEADER_BYTES = 100_000_000
#: Tensors in one file. Real checkpoints hold a few hundred to a few thousand per file.
SAFETENSORS_MAX_TENSORS = 100_000
#: Dimensions of one tensor.
SAFETENSORS_MAX_NDIM = 64
#: Bytes of one tensor name.
SAFETENSORS_MAX_NAME_BYTES = 1 << 16
#: Entries of ``__metadata__`` (string to string).
SAFETENSORS_MAX_METADATA_ENTRIES = 4096
#: Tensor digests in one signed manifest (every file together): keeps the bundle below BUNDLE_MAX_BYTES.
MODEL_MAX_TENSORS = 1_000_000
#: Resources (files, or shards of files) in one signed manifest.
MODEL_MAX_RESOURCES = 1_000_000

# --- model folders (sign, verify, load walk them alike) --------------------------------------------------------
#: Folders below the model root. Real model repositories nest 2-4 deep.
MODEL_MAX_DEPTH = 64
#: Files in one model (each becomes a resource of the signed manifest).
MODEL_MAX_FILES = 100_000
#: The load gate keeps the verified bytes of each non-tensor file up to this size (config, tokenizer,
#: vocabulary); larger files are verified by a streaming hash and not kept in memory.
LOAD_KEEP_MAX_BYTES = 64 << 20

# --- directory archives (qsafe decrypt --extract) -------------------------------------------------------------
#: Folders an archive entry may be nested in (as for model folders).
ARCHIVE_MAX_DEPTH = 64
#: Bytes of an archive entry's path.
ARCHIVE_MAX_NAME_BYTES = 4096

# --- federated updates, HE contexts, age files, keys, model evidence (moved here from their modules) -------------
#: Clients one HE context may be made for (its max_clients).
FL_MAX_CLIENTS = 1 << 20
#: Header of a .qfl update, aggregate or HE context file.
FL_CONTAINER_MAX_HEADER_BYTES = 16 << 20
#: Ciphertexts (blobs) in one container.
FL_CONTAINER_MAX_BLOBS = 1 << 20
#: Bytes of one blob.
FL_CONTAINER_MAX_BLOB_BYTES = 1 << 30
#: Bytes of a container's signature.
FL_CONTAINER_MAX_SIGNATURE_BYTES = 16 << 10
#: Tensors named in one federated update.
FL_MAX_TENSORS = 100_000
#: Values in one federated update.
FL_MAX_VALUES = 1 << 34
#: Bytes of one .qfl update file (16 GiB: ~1.6 billion values in bfv-packed).
FL_UPDATE_MAX_BYTES = 1 << 34
#: Bytes of an HE context file (a CKKS public context with norm keys is ~35 MB).
FL_CONTEXT_MAX_BYTES = 256 << 20
#: Whitespace around an armored age file.
AGE_ARMOR_MAX_WHITESPACE = 1024
#: scrypt work factor (log2 N) a passphrase-encrypted file may demand (22: 4 GiB of scrypt memory; age's own default is 18).
AGE_SCRYPT_MAX_WORK_FACTOR = 22
#: Bytes of one age header line.
AGE_HEADER_MAX_LINE = 8192
#: Bytes of an age header (all recipient stanzas).
AGE_HEADER_MAX_BYTES = 1 << 20
#: Bytes of one signed model-evidence file.
MODEL_EVIDENCE_MAX_BYTES = 16 << 20
#: Claims extracted from one model-evidence statement.
MODEL_EVIDENCE_MAX_CLAIMS = 100_000
#: Nesting of a model-evidence predicate flattened into claims.
MODEL_EVIDENCE_MAX_DEPTH = 32
#: Verified certificate links cached per process (evidence chains).
ATTESTATION_MAX_CACHED_LINKS = 4096
#: shard_size of a shards-method manifest.
MODEL_MAX_SHARD_SIZE = 1 << 53
#: Bytes of a key file (public, private, identity).
KEY_FILE_MAX_BYTES = 16 << 20

# --- fraud pipeline (qsafe.fraud, qsafe pipeline, qsafe dataset) ---------------------------------------------
#: Bytes of a dataset CSV read whole (the ULB sample is 2.9 MB, the full ULB file 144 MB).
DATASET_CSV_MAX_BYTES = 256 << 20
#: Bytes of a signed dataset manifest or poisoning audit (the audit lists suspect row numbers).
DATASET_STATEMENT_MAX_BYTES = 64 << 20
#: Bytes of a dataset's leaf file (32 bytes per row: 33 million rows).
DATASET_LEAVES_MAX_BYTES = 1 << 30
#: Bytes of a pipeline config (TOML).
PIPELINE_CONFIG_MAX_BYTES = 1 << 20

# --- times ----------------------------------------------------------------------------------------------------
#: Timestamps outside [TIME_MIN_YEAR, TIME_MAX_YEAR) are format errors: arithmetic on them cannot overflow.
TIME_MIN_YEAR = 1900
#: First year refused (times are compared in UTC).
TIME_MAX_YEAR = 9000


def all_limits() -> dict[str, int]:
    """Every limit of this module by name (for docs/security.md and its agreement test).

    Returns:
        ``{name: value}`` for each public constant, in definition order.
    """
    return {name: value for name, value in globals().items() if name.isupper() and isinstance(value, int)}
