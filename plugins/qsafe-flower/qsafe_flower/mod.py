"""The client mod: turns a ClientApp's training reply into a signed, HE-encrypted qsafe update.

Add it to any ClientApp (``ClientApp(mods=[qsafe_mod])``); the ClientApp itself is not touched. On a TRAIN
message the mod remembers the global arrays it received, lets the ClientApp train, then replaces the reply's
ArrayRecord by one opaque Array: the update ``local - global`` clamped to the context's value range (and first
clipped to the server's published L2 bound when a blind norm check runs), encrypted with the public HE context,
and ML-DSA-signed with the client's key, bound to the round (``server-round``) and a fresh nonce.

Where the client's material comes from:

- :func:`make_qsafe_mod` (explicit): ``make_qsafe_mod(public_context, signing_key)``;
- :data:`qsafe_mod` (deployment): the SuperNode's ``--node-config`` names ``qsafe-context`` (the public context
  file, pinned at the client: a server cannot hand it another) and ``qsafe-key`` (the client's ML-DSA key; a
  protected one is opened with ``$QSAFE_PASSPHRASE`` or the file named by ``qsafe-passphrase-file``).

A message whose config names another context fingerprint is answered with an error, never encrypted under it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from qsafe.errors import HEMismatchError, UsageError
from qsafe.federated import HEContext, encrypt_update
from qsafe.keys import PrivateKey, load_private_key
from qsafe_flower._records import (
    CONTEXT_KEY,
    NORM_BOUND_KEY,
    config_of,
    only_array_record,
    to_numpy,
    update_record,
)

__all__ = ["client_material", "make_qsafe_mod", "prepare_update", "qsafe_mod"]

Mod = Callable[[Message, Context, ClientAppCallable], Message]
_CACHE: dict[tuple[str, str], tuple[HEContext, PrivateKey]] = {}


def prepare_update(global_arrays: dict[str, np.ndarray], local_arrays: dict[str, np.ndarray], clip: float,
                   norm_bound: float | None) -> tuple[dict[str, np.ndarray], int]:
    """The update a protocol client encrypts, and how many values were clamped.

    ``local - global`` per tensor (float32), scaled to ``norm_bound`` in L2 if it is larger, then every value
    clamped to ``[-clip, clip]`` (the HE context refuses anything outside).

    Raises:
        UsageError: the reply's tensors are not the ones received (names or shapes differ).
    """
    if list(global_arrays) != list(local_arrays) or any(
            global_arrays[k].shape != local_arrays[k].shape for k in global_arrays):
        raise UsageError("the ClientApp's reply arrays differ in names or shapes from the global arrays it got")
    delta = {k: local_arrays[k].astype(np.float64) - global_arrays[k].astype(np.float64) for k in global_arrays}
    if norm_bound is not None:
        norm = float(np.sqrt(sum(float(np.vdot(d, d)) for d in delta.values())))
        if norm > norm_bound:
            delta = {k: d * (norm_bound / norm) for k, d in delta.items()}
    clamped = sum(int(np.count_nonzero(np.abs(d) > clip)) for d in delta.values())
    return {k: np.clip(d, -clip, clip).astype(np.float32) for k, d in delta.items()}, clamped


def make_qsafe_mod(context: HEContext, key: PrivateKey) -> Mod:
    """A mod that encrypts and signs with ``context`` (public) and ``key``.

    Raises:
        UsageError: ``context`` holds the secret key (clients get the public one).
    """
    if context.has_secret:
        raise UsageError("the client mod was given the secret HE context; clients get the public one")

    def mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        return _encrypting(msg, ctxt, call_next, context, key)

    return mod


def client_material(node_config: dict[str, Any]) -> tuple[HEContext, PrivateKey]:
    """Load (once per process) the public context and signing key a SuperNode's node config names.

    Raises:
        UsageError: ``qsafe-context`` or ``qsafe-key`` is missing, or the context is a secret one.
        KeyFileError / WrongPassphraseError / FormatError: the files do not load.
    """
    try:
        ctx_path, key_path = str(node_config["qsafe-context"]), str(node_config["qsafe-key"])
    except KeyError as exc:
        raise UsageError(f"qsafe_mod needs node config {exc.args[0]!r} (flower-supernode --node-config)") from exc
    cached = _CACHE.get((ctx_path, key_path))
    if cached is None:
        context = HEContext.load(ctx_path)
        if context.has_secret:
            raise UsageError(f"{ctx_path} is a secret HE context; clients get the public one")
        phrase_file = node_config.get("qsafe-passphrase-file")

        def from_environment() -> bytes:  # asked only when the key file is protected
            text = os.environ.get("QSAFE_PASSPHRASE")
            if text is None:
                raise UsageError(f"{key_path} is protected: set QSAFE_PASSPHRASE or node config qsafe-passphrase-file")
            return text.encode()

        key = load_private_key(key_path, None if phrase_file else from_environment,
                               passphrase_file=str(phrase_file) if phrase_file else None)
        cached = _CACHE[(ctx_path, key_path)] = (context, key)
    return cached


def qsafe_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """The mod for deployments: client material from the node config (see the module docstring)."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    context, key = client_material(dict(ctxt.node_config))
    return _encrypting(msg, ctxt, call_next, context, key)


def _encrypting(msg: Message, ctxt: Context, call_next: ClientAppCallable, context: HEContext,
                key: PrivateKey) -> Message:
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    config = config_of(msg.content)
    expected = config.get(CONTEXT_KEY)
    if expected is not None and expected != context.fingerprint:
        raise HEMismatchError(f"the server expects HE context {expected!s}; this client pins {context.fingerprint}")
    server_round = int(config["server-round"])  # type: ignore[arg-type]
    bound = config.get(NORM_BOUND_KEY)
    _, received = only_array_record(msg.content)
    global_arrays = to_numpy(received)
    reply = call_next(msg, ctxt)
    if reply.has_error():
        return reply
    name, record = only_array_record(reply.content)
    delta, clamped = prepare_update(global_arrays, to_numpy(record), context.params.clip,
                                    float(bound) if bound is not None else None)  # type: ignore[arg-type]
    update = encrypt_update(delta, context, key, server_round)
    content = RecordDict({k: v for k, v in reply.content.items() if k != name})
    content[name] = update_record(update.to_bytes())
    for metrics in content.metric_records.values():
        metrics["qsafe-clamped"] = clamped
    reply.content = content
    return reply
