"""Cryptographic internals of qsafe: DER/PEM helpers and the signature algorithm adapters behind :mod:`qsafe.keys`."""
