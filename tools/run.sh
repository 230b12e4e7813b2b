#!/usr/bin/env bash
# The README's main job: set up, start the whole system on this machine (encoder, language, gateway, with the
# durable embedding cache under .llark/cache), wait until every service reports SERVING, and ask a question about
# the bundled clip through the gateway, streaming the answer. The services keep running; tools/stop.sh stops them.
# Logs: .llark/logs/<service>.log. The API key made on the first run: .llark/api-key (mode 0600, as the gateway's
# internal token beside it, which the model services require of every call: nothing reaches them but the gateway).
#
#   bash tools/run.sh [QUESTION] [CLIP]
#
# Other models and places (tools/bench-e2e.sh uses them): LLARK_LANGUAGE_MODEL, LLARK_ENCODER_MODEL (folders),
# LLARK_STATE (default .llark: logs, cache, pids, key), LLARK_NO_ASK=1 (start and wait, ask nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
question=${1:-"Describe this clip: its tempo, key and instruments."}
clip=${2:-models/clips/demo-heldout-electric-piano-eb-major.wav}
root=$(pwd)
state=$(realpath -m "${LLARK_STATE:-$root/.llark}")
language_model=$(realpath -m "${LLARK_LANGUAGE_MODEL:-$root/models/llark-demo}")
encoder_model=$(realpath -m "${LLARK_ENCODER_MODEL:-$root/models/spectral}")
# The encoder pools at the frame rate the language model was trained on (its config's mm_audio_fps).
fps=$(sed -n 's/.*"mm_audio_fps": *\([0-9.]*\).*/\1/p' "$language_model/config.json" | head -n 1)
fps=${fps:-25}
mkdir -p "$state/logs" "$state/cache" "$state/pids"

[ -x tools/LLark.Cli/bin/Release/net10.0/llark ] && [ -f gateway/LLark.Gateway/bin/Release/net10.0/LLark.Gateway.dll ] || bash tools/setup.sh
llark=tools/LLark.Cli/bin/Release/net10.0/llark

bash tools/make-secrets.sh "$state"

start() { # name dll settings...
  local name=$1 dll=$2; shift 2
  if [ -f "$state/pids/$name" ] && kill -0 "$(cat "$state/pids/$name")" 2>/dev/null; then return; fi
  # Each service reads the appsettings.json beside its dll.
  env "$@" dotnet "$dll" --contentRoot "$(dirname "$dll")" >"$state/logs/$name.log" 2>&1 &
  echo $! > "$state/pids/$name"
}

start encoder "$root"/services/LLark.Encoder.Service/bin/Release/net10.0/LLark.Encoder.Service.dll \
  LLark__Listen__Address=127.0.0.1 LLark__Listen__GrpcPort=5002 LLark__Listen__HttpPort=9465 \
  LLark__Internal__TokenFile="$state/internal-token" \
  LLark__Encoder__ModelPath="$encoder_model" LLark__Encoder__Fps="$fps" LLark__Encoder__Cache__Directory="$state/cache"
start language "$root"/services/LLark.Language.Service/bin/Release/net10.0/LLark.Language.Service.dll \
  LLark__Listen__Address=127.0.0.1 LLark__Listen__GrpcPort=5001 LLark__Listen__HttpPort=9464 \
  LLark__Internal__TokenFile="$state/internal-token" \
  LLark__Language__ModelPath="$language_model" LLark__Language__EncoderAddress=http://127.0.0.1:5002 \
  LLark__Language__DefaultMaxNewTokens=128 LLark__Language__PrefixCacheBytes=268435456
start gateway "$root"/gateway/LLark.Gateway/bin/Release/net10.0/LLark.Gateway.dll \
  LLark__Listen__Address=127.0.0.1 LLark__Listen__GrpcPort=5000 LLark__Listen__HttpPort=8080 \
  LLark__Gateway__ApiKeysFile="$state/api-keys" LLark__Internal__TokenFile="$state/internal-token" \
  ReverseProxy__Clusters__language__Destinations__pods__Address=http://127.0.0.1:5001 \
  ReverseProxy__Clusters__encoder__Destinations__pods__Address=http://127.0.0.1:5002

wait_serving() { # name url
  for _ in $(seq 1 600); do
    if curl -sf "$2" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$state/pids/$1")" 2>/dev/null; then
      echo "run: $1 exited; see $state/logs/$1.log" >&2; tail -n 20 "$state/logs/$1.log" >&2; exit 1
    fi
    sleep 0.2
  done
  echo "run: $1 did not report SERVING in 120 s; see $state/logs/$1.log" >&2; exit 1
}
wait_serving encoder http://127.0.0.1:9465/healthz
wait_serving language http://127.0.0.1:9464/healthz
wait_serving gateway http://127.0.0.1:8080/healthz
echo "run: encoder, language and gateway are SERVING (logs in $state/logs; stop with: bash tools/stop.sh)"

[ "${LLARK_NO_ASK:-0}" = 1 ] && exit 0
if [ "$language_model" = "$root/models/llark-demo" ]; then
  echo "run: models/llark-demo is a small demonstration LLark (14 M parameters) trained on this machine by tools/make-demo.sh on"
  echo "     synthetic General MIDI music; it hears it through models/spectral, an encoder with no learned weights. On 200"
  echo "     held-out clips, rendered with a soundfont it never heard, it reads the tempo right 96.0 % of the time, the key"
  echo "     with a MIREX score of 0.910 and names the melody instrument 50.8 % of the time (tools/demo/README.md)."
  [ "$clip" = models/clips/demo-heldout-electric-piano-eb-major.wav ] &&
    echo "     The bundled clip is the first of them, chosen before training: electric piano lead, Eb major, 138 BPM, 4/4, electronic."
  echo "     A real LLark: the same services on Jukebox-5B and Llama-2-7B-chat weights (README: \"Making your own LLark\")."
fi
echo "Q: $question"
printf 'A: '
LLARK_ADDRESS=http://127.0.0.1:5000 LLARK_API_KEY="$(cat "$state/api-key")" "$llark" ask "$clip" "$question"
