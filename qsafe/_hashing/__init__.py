"""Internals of model hashing: hash engines, streaming readers, the bounded safetensors parser, the model walk.

The public surface is :mod:`qsafe.hashing` and :mod:`qsafe.manifest`.
"""
