#!/usr/bin/env bash
# Serving side: decrypt the model into a fresh directory, then verify its signature before anything uses it.
#
#   decrypt_on_host.sh MODEL.age IDENTITY_FILE DEST_DIR SIGNER_PUB
#
# IDENTITY_FILE is the host's passphrase-protected .key ($QSAFE_PASSPHRASE or --passphrase-file unlocks it).
# DEST_DIR must not exist (or be empty): extraction lands in a private temporary folder and is renamed into place
# only after the last chunk authenticated; a model that then fails verification is removed.
set -euo pipefail

in=${1:?usage: decrypt_on_host.sh MODEL.age IDENTITY_FILE DEST_DIR SIGNER_PUB}
identity=${2:?usage: decrypt_on_host.sh MODEL.age IDENTITY_FILE DEST_DIR SIGNER_PUB}
dest=${3:?usage: decrypt_on_host.sh MODEL.age IDENTITY_FILE DEST_DIR SIGNER_PUB}
pub=${4:?usage: decrypt_on_host.sh MODEL.age IDENTITY_FILE DEST_DIR SIGNER_PUB}

qsafe decrypt -i "$identity" --extract "$dest" "$in"
status=0
qsafe verify "$dest" --key "$pub" || status=$?
if [ "$status" -ne 0 ]; then
    rm -rf -- "$dest"
    echo "decrypt_on_host: $dest did not verify (qsafe exit $status); removed" >&2
    exit "$status"
fi
echo "$dest"
