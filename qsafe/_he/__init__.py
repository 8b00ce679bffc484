"""Internals of the homomorphic-encryption layer (TenSEAL). Not public API: use :mod:`qsafe.federated`.

TenSEAL is imported lazily, only inside the functions that need it (see :func:`qsafe._he.backend.tenseal`),
so that ``import qsafe``, ``qsafe verify`` and ``qsafe fl --help`` never load it.
"""
