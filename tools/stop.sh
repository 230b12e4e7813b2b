#!/usr/bin/env bash
# Stops what tools/run.sh started (LLARK_STATE: the same state folder it was given, default .llark).
# The embedding cache (<state>/cache) and the API key are kept.
set -uo pipefail
cd "$(dirname "$0")/.."
for f in "${LLARK_STATE:-.llark}"/pids/*; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped $(basename "$f")"
  fi
  rm -f "$f"
done
