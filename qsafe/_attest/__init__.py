"""Internals of attestation: evidence parsers, signature/chain verifiers, collectors' device access.

Nothing here is public API; :mod:`qsafe.attestation` is.
"""
