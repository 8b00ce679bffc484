"""Drive the client mod and the strategy wrapper without a SuperLink: train messages in, replies out."""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from qsafe_flower._records import array_record_of

GLOBAL = {"w": np.random.default_rng(0).normal(size=(30, 40)).astype(np.float32), "b": np.zeros(7, np.float32)}


def train_message(node: int, server_round: int, fingerprint: str | None, arrays: dict[str, np.ndarray] = GLOBAL,
                  extra: dict[str, Any] | None = None) -> Message:
    config = ConfigRecord({"server-round": server_round, **({"qsafe-context": fingerprint} if fingerprint else {}),
                           **(extra or {})})
    return Message(RecordDict({"arrays": array_record_of(arrays), "config": config}), dst_node_id=node,
                   message_type=MessageType.TRAIN)


def client_reply(mod: Any, msg: Message, delta: dict[str, np.ndarray], examples: int = 10) -> Message:
    """Run ``mod`` around a ClientApp that adds ``delta`` to what it received."""
    def app(m: Message, _ctx: Context) -> Message:
        received = {k: v.numpy() for k, v in m.content["arrays"].items()}
        local = {k: received[k] + delta[k] for k in received}
        return Message(RecordDict({"arrays": array_record_of(local),
                                   "metrics": MetricRecord({"num-examples": examples})}), reply_to=m)

    ctx = Context(run_id=1, node_id=msg.metadata.dst_node_id, node_config={}, state=RecordDict(), run_config={})
    return mod(msg, ctx, app)  # type: ignore[no-any-return]


def deltas(count: int, scale: float = 0.05, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{k: rng.uniform(-scale, scale, v.shape).astype(np.float32) for k, v in GLOBAL.items()}
            for _ in range(count)]
