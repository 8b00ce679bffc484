"""Every domain-separation label of qsafe in one place: ML-DSA context strings, HKDF infos, media types.

A label is never reused for two purposes, so a signature or key made for one use cannot be replayed in another.
"""

from __future__ import annotations

# ML-DSA (FIPS 204) context strings, one per use (at most 255 bytes each).
# Model bundles: a plain ML-DSA DSSE signature uses the EMPTY context, Sigstore's convention (sigstore/sigstore's
# experimental ML-DSA signer and verifier pass no context; protobuf-specs' ML_DSA_* are pure ML-DSA over the
# DSSE PAE), so other Sigstore verifiers accept qsafe's ML-DSA bundles. DSSE's PAE (payload type + length)
# separates the domain, and every other qsafe use of a key has a non-empty context. See docs/signing.md.
MLDSA_CONTEXT_SIGSTORE_DSSE = b""
# qsafe 0.1 signed ML-DSA bundles with this context (still accepted); composites keep it (no Sigstore name).
MLDSA_CONTEXT_MODEL_BUNDLE = b"qsafe/v1 model-bundle dsse"
MLDSA_CONTEXT_FL_UPDATE = b"qsafe/v1 federated-update"
MLDSA_CONTEXT_AUDIT_HEAD = b"qsafe/v1 audit-round-head"
MLDSA_CONTEXT_ATTESTATION_RESULT = b"qsafe/v1 attestation-result"
MLDSA_CONTEXT_MODEL_EVIDENCE = b"qsafe/v1 model-evidence dsse"
# Statements about a dataset (subject = the dataset's Merkle root over rows): manifest and poisoning audit.
MLDSA_CONTEXT_DATASET_EVIDENCE = b"qsafe/v1 dataset-evidence dsse"

# Media and predicate types.
SIGSTORE_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
ATTESTATION_RESULT_PREDICATE_TYPE = "https://qsafe.dev/attestation-result/v1"
# Model evidence (qsafe.model_evidence): signed statements about a model, subject = its manifest root digest.
ROBUSTNESS_EVALUATION_PREDICATE_TYPE = "https://qsafe.dev/robustness-evaluation/v1"
# Fraud pipeline (qsafe.fraud): statements about a dataset (subject: Merkle root over its rows) ...
DATASET_MANIFEST_PREDICATE_TYPE = "https://qsafe.dev/dataset-manifest/v1"
POISONING_AUDIT_PREDICATE_TYPE = "https://qsafe.dev/poisoning-audit/v1"
# ... and model evidence about the trained model (subject: the model's manifest root digest).
MODEL_CARD_PREDICATE_TYPE = "https://qsafe.dev/model-card/v1"
DP_CERTIFICATE_PREDICATE_TYPE = "https://qsafe.dev/dp-certificate/v1"
PRIVACY_AUDIT_PREDICATE_TYPE = "https://qsafe.dev/privacy-audit/v1"
THEFT_AUDIT_PREDICATE_TYPE = "https://qsafe.dev/theft-audit/v1"
# Merkle tree over dataset rows (RFC 9162 section 2.1 hashing: 0x00 leaf prefix, 0x01 node prefix).
DATASET_MERKLE_ALGORITHM = "rfc9162-sha256"
# Keyed selection of watermarked API responses (HMAC-SHA256 over this label, the API key and the query).
WATERMARK_SELECT_LABEL = b"qsafe/v1 fraud-api-watermark\n"

# Attestation-policy claim prefix of model-evidence rules ("model.robust_accuracy[linf,0.1]").
MODEL_EVIDENCE_CLAIM_PREFIX = "model."

# Binding hash for attestation freshness (nonce || model digest || policy digest).
ATTESTATION_BINDING_LABEL = b"qsafe/v1 attestation-binding"

# Federated-update container magic.
FL_UPDATE_MAGIC = b"qsafe-fl-update/v1\n"
FL_CONTEXT_FINGERPRINT_LABEL = b"qsafe/v1 he-context-fingerprint"
FL_AGGREGATE_MAGIC = b"qsafe-fl-aggregate/v1\n"
FL_NORM_MAGIC = b"qsafe-fl-norm/v1\n"
FL_CONTEXT_MAGIC = b"qsafe-he-context/v1\n"
FL_SECRET_CONTEXT_MAGIC = b"qsafe-he-secret-context/v1\n"

# Safetensors tensor digests (qsafe.manifest.tensor_digest): prefix of every hashed tensor encoding, and the
# annotation key under which a bundle resource carries a file's header and tensor digests.
SAFETENSORS_TENSOR_DIGEST_LABEL = b"qsafe/v1 safetensors-tensor\n"
SAFETENSORS_ANNOTATION_KEY = "qsafe.safetensors.v1"
