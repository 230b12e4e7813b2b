#!/usr/bin/env bash
# `llark-bench e2e` on models whose sizes make it mean something: a stories15M-shaped LLark (tokens take
# milliseconds, so the gateway's cost per token shows) and a mid-size Jukebox (width 1024, 12 blocks, the 5b
# VQ-VAE and context: an encode takes seconds, as the real one does on a GPU), both with random weights.
# Starts its own encoder, language service and gateway (state in .llark/bench, the same ports as tools/run.sh,
# so stop that system first), measures, and stops them. Extra arguments go to `llark-bench e2e`.
#
#   bash tools/bench-e2e.sh [--rounds 5] [--streams 1] [--new-tokens 128] [--uncached 5] [--json]
#   LLARK_BENCH_SHAPE=stories15m LLARK_BENCH_ENCODER=mid|tiny bash tools/bench-e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x tools/LLark.Bench/bin/Release/net10.0/llark-bench ] && [ -f gateway/LLark.Gateway/bin/Release/net10.0/LLark.Gateway.dll ] || bash tools/setup.sh
bench=tools/LLark.Bench/bin/Release/net10.0/llark-bench
shape=${LLARK_BENCH_SHAPE:-stories15m}
encoder=${LLARK_BENCH_ENCODER:-mid}
state=.llark/bench
models=$state/models-$shape-$encoder
if [ ! -f "$models/language/model.safetensors" ] || [ ! -f "$models/encoder/jukebox_encoder.json" ]; then
  "$bench" e2e --prepare "$models" --shape "$shape" --encoder-shape "$encoder"
fi
if curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1; then
  echo "bench-e2e: something already serves on the gateway's port (tools/run.sh?): stop it first (bash tools/stop.sh)" >&2
  exit 1
fi
# A fresh cache each time, so the uncached clips really are encoded.
rm -rf "$state/cache"
trap 'LLARK_STATE=$state bash tools/stop.sh >/dev/null' EXIT
LLARK_STATE=$state LLARK_NO_ASK=1 LLARK_LANGUAGE_MODEL=$models/language LLARK_ENCODER_MODEL=$models/encoder bash tools/run.sh
echo "bench-e2e: $shape LLark, $encoder Jukebox (random weights), system in $state"
"$bench" e2e --api-key "$(cat "$state/api-key")" "$@"
