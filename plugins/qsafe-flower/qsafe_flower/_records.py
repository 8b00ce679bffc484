"""How qsafe's objects ride in Flower messages: keys, and conversions between records and numpy.

An encrypted update travels as the reply's only ArrayRecord, holding one :class:`flwr.app.Array` whose ``data``
is the signed ``qsafe-fl-update/v1`` container (opaque bytes; Flower chunks large arrays on the wire).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from qsafe.errors import FormatError

__all__ = [
    "CONTEXT_KEY",
    "NORM_BOUND_KEY",
    "UPDATE_ARRAY",
    "UPDATE_STYPE",
    "array_record_of",
    "config_of",
    "only_array_record",
    "to_numpy",
    "update_bytes",
    "update_record",
]

UPDATE_ARRAY = "qsafe-update"  # the Array's key inside the ArrayRecord
UPDATE_STYPE = "qsafe/fl-update-v1"  # Array.stype: what the bytes are
CONTEXT_KEY = "qsafe-context"  # ConfigRecord: fingerprint of the HE context the server expects
NORM_BOUND_KEY = "qsafe-norm-bound"  # ConfigRecord: the L2 bound protocol clients clip their update to


def only_array_record(content: RecordDict) -> tuple[str, ArrayRecord]:
    """The single ArrayRecord of a message (qsafe, like Flower's DP mods, expects exactly one).

    Raises:
        FormatError: none or several.
    """
    records = list(content.array_records.items())
    if len(records) != 1:
        raise FormatError(f"expected exactly one ArrayRecord in the message, found {len(records)}")
    return records[0]


def config_of(content: RecordDict) -> ConfigRecord:
    """The message's ConfigRecord (the first one; Flower's strategies send one, under ``config``)."""
    records = list(content.config_records.values())
    return records[0] if records else ConfigRecord()


def to_numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    """An ArrayRecord's arrays by name (order kept)."""
    return {name: np.asarray(array.numpy()) for name, array in record.items()}


def array_record_of(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """numpy arrays -> ArrayRecord, order kept."""
    return ArrayRecord({name: Array(np.ascontiguousarray(value)) for name, value in arrays.items()})


def update_record(data: bytes) -> ArrayRecord:
    """Wrap a signed update container as the reply's ArrayRecord."""
    return ArrayRecord({UPDATE_ARRAY: Array(dtype="bytes", shape=(len(data),), stype=UPDATE_STYPE, data=data)})


def update_bytes(content: RecordDict) -> bytes:
    """The update container carried by a reply.

    Raises:
        FormatError: the reply does not carry exactly one qsafe update (e.g. the client has no qsafe mod).
    """
    _, record = only_array_record(content)
    array = record.get(UPDATE_ARRAY) if len(record) == 1 else None
    if array is None or array.stype != UPDATE_STYPE:
        raise FormatError("the reply carries no qsafe update (is qsafe_mod installed on this ClientApp?)")
    return bytes(array.data)
