"""Internals of model hashing: hash engines, streaming readers, the bounded safetensors parser, the model walk,
and the load gate's read-once pass (``gateread``: every file hashed as it is read; ``tensorload``: each tensor
read into its own buffer, hashed, compared, then shared with the arrays).

The public surface is :mod:`qsafe.hashing`, :mod:`qsafe.manifest` and :func:`qsafe.load_model`.
"""
