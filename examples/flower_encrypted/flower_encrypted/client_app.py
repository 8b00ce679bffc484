"""The ClientApp: ordinary Flower training code, plus one mod (qsafe_mod) that encrypts and signs the reply."""

from __future__ import annotations

import time

from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from qsafe_flower import qsafe_mod

from flower_encrypted.task import client_data, evaluate, train

app = ClientApp(mods=[qsafe_mod])  # qsafe_mod reads qsafe-context and qsafe-key from the SuperNode's node config


def _data(context: Context):  # type: ignore[no-untyped-def]
    return client_data(int(context.node_config["partition-id"]), int(context.node_config["num-partitions"]))


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    x, y, _, _ = _data(context)
    arrays = {k: v.numpy() for k, v in msg.content["arrays"].items()}
    rnd = int(msg.content["config"]["server-round"])
    cfg = context.run_config
    if int(cfg["delay-partition"]) == int(context.node_config["partition-id"]) and int(cfg["delay-round"]) == rnd:
        time.sleep(float(cfg["delay-seconds"]))  # fault injection (off by default): a slow client in one round
    local = train(arrays, x, y, int(context.run_config["local-epochs"]), seed=rnd)
    return Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in local.items()}),
                               "metrics": MetricRecord({"num-examples": len(y)})}), reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    _, _, x, y = _data(context)
    loss, accuracy = evaluate({k: v.numpy() for k, v in msg.content["arrays"].items()}, x, y)
    return Message(RecordDict({"metrics": MetricRecord({"num-examples": len(y), "loss": loss,
                                                        "accuracy": accuracy})}), reply_to=msg)
