"""Sigstore data shipped with qsafe.

``trusted_root.production.json``: Sigstore's production trust root (Fulcio CAs, Rekor v1 and v2 log keys, CT
log keys, the timestamp authority), byte for byte the copy that the ``sigstore`` 4.5.1 wheel embeds
(``sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json``), which sigstore-python obtained
through Sigstore's TUF repository. Apache-2.0. :mod:`qsafe.keyless` checks its SHA-256 against
``PRODUCTION_TRUSTED_ROOT_SHA256`` on every load; a test checks it against the installed wheel's copy.
"""
