#!/usr/bin/env bash
# Release side: encrypt a signed model to the serving host's identity (age format, ML-KEM-768 + X25519).
#
#   encrypt_for_serving.sh MODEL_DIR SERVING_RECIPIENT_FILE OUTPUT.age
#
# SERVING_RECIPIENT_FILE is the .pub the serving host made with `qsafe keygen --alg ml-kem-768-x25519`; it holds
# an age1pq1… recipient (one per line: several hosts may each decrypt). The model's signature (model.sig) is
# encrypted with it, so the host can check who released what it decrypted.
set -euo pipefail

model=${1:?usage: encrypt_for_serving.sh MODEL_DIR SERVING_RECIPIENT_FILE OUTPUT.age}
recipients=${2:?usage: encrypt_for_serving.sh MODEL_DIR SERVING_RECIPIENT_FILE OUTPUT.age}
out=${3:?usage: encrypt_for_serving.sh MODEL_DIR SERVING_RECIPIENT_FILE OUTPUT.age}

[ -f "$model/model.sig" ] || { echo "sign $model first (qsafe sign)" >&2; exit 2; }
qsafe encrypt -R "$recipients" -o "$out" "$model"     # one deterministic tar stream, 64 KiB authenticated chunks
