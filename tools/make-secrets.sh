#!/usr/bin/env bash
# Makes the local system's secrets in STATE (tools/run.sh's .llark) unless they exist, readable by their owner
# only: api-key (the key clients send), api-keys (its hash, for the gateway) and internal-token (what the gateway
# sends the model services). Files an older run left readable to others are narrowed to 0600 too.
#
#   bash tools/make-secrets.sh STATE
set -euo pipefail
state=${1:?usage: make-secrets.sh STATE}
mkdir -p "$state"
# Before anything is written: a file created readable to others could be read before a chmod.
umask 077
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
if [ ! -f "$state/api-key" ]; then
  random > "$state/api-key"
  printf 'local:%s\n' "$(tr -d '\n' < "$state/api-key" | sha256sum | cut -d' ' -f1)" > "$state/api-keys"
fi
[ -f "$state/internal-token" ] || random > "$state/internal-token"
chmod 600 "$state/api-key" "$state/api-keys" "$state/internal-token"
