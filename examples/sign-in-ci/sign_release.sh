#!/usr/bin/env bash
# Sign a model release in CI, then check the signature before publishing it.
#
#   sign_release.sh MODEL_DIR SIGNING_KEY [PUBLIC_KEY]
#
# SIGNING_KEY is the passphrase-protected key that `qsafe keygen --out release` wrote (store it as a CI secret
# file); its passphrase comes from $QSAFE_PASSPHRASE (a CI secret variable), never from the command line.
# Writes MODEL_DIR/model.sig and prints its path; exits non-zero (qsafe's exit code) on any failure.
set -euo pipefail

model=${1:?usage: sign_release.sh MODEL_DIR SIGNING_KEY [PUBLIC_KEY]}
key=${2:?usage: sign_release.sh MODEL_DIR SIGNING_KEY [PUBLIC_KEY]}
pub=${3:-${key%.key}.pub}

: "${QSAFE_PASSPHRASE:?set QSAFE_PASSPHRASE from your CI secret store}"

qsafe sign "$model" --key "$key" >/dev/null          # hashes every file and tensor, writes $model/model.sig
qsafe verify "$model" --key "$pub"                     # the release verifies with the key users will pin
qsafe inspect "$model/model.sig" --json > "$model.signature.json"   # signer, algorithm, root digest: for the log
echo "$model/model.sig"
