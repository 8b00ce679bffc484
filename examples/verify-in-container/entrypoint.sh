#!/usr/bin/env bash
# Container entrypoint: verify the model before the server starts; a model that does not verify never serves.
#
#   ENTRYPOINT ["/app/entrypoint.sh"]   CMD ["python", "-m", "my_server"]
#
# MODEL_DIR      the model directory baked into or mounted in the image (default /models/current)
# SIGNER_PUB     the release signer's public key, pinned in the image (default /etc/qsafe/release.pub)
# QSAFE_POLICY   optional: an attestation policy name (e.g. nvidia-hopper-cc): then `qsafe load --collect`
#                also checks this machine's GPU evidence before the server starts
set -euo pipefail

model=${MODEL_DIR:-/models/current}
pub=${SIGNER_PUB:-/etc/qsafe/release.pub}

status=0
qsafe verify "$model" --key "$pub" || status=$?
if [ "$status" -ne 0 ]; then
    echo "entrypoint: $model does not verify with $pub (qsafe exit $status); not starting" >&2
    exit "$status"
fi
if [ -n "${QSAFE_POLICY:-}" ]; then
    qsafe load "$model" --key "$pub" --policy "$QSAFE_POLICY" --collect --framework numpy
fi
exec "$@"
