#!/usr/bin/env bash
# Makes the bundled demo LLark (models/llark-demo, over the spectral encoder models/spectral) from nothing, with the
# pipeline's own commands, on a CPU: synthetic labelled music -> spectral frames (no learned weights) -> instruction
# pairs -> llark train -> llark eval on held-out clips from a seed and soundfont that training never sees. Every stage
# is resumable: run it again after a stop and it goes on.
#
#   bash tools/make-demo.sh [WORK_DIR]      # default .llark/demo; the result is WORK_DIR/llark-demo
#
# The recipe's configs are tools/demo/train.json and train-instrument.json; the stages, their times and the scores are in tools/demo/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(realpath -m "${1:-$root/.llark/demo}")
recipe="$root/tools/demo"
encoder="$root/models/spectral"
[ -x tools/LLark.Cli/bin/Release/net10.0/llark ] || bash tools/setup.sh
llark="$root/tools/LLark.Cli/bin/Release/net10.0/llark"
sf2=/usr/share/sounds/sf2
# A third General MIDI soundfont for training (setup.sh installs the other two): csound's sf_GMbank.
if ! dpkg -s csound-soundfont >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq csound-soundfont || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq csound-soundfont; }
fi
for f in FluidR3_GM.sf2 sf_GMbank.sf2 TimGM6mb.sf2; do
  [ -f "$sf2/$f" ] || { echo "make-demo: $sf2/$f is missing (apt-get install fluid-soundfont-gm csound-soundfont timgm6mb-soundfont)" >&2; exit 1; }
done
mkdir -p "$work"
cd "$work"
stage() { echo; echo "== $(date -u +%H:%M:%S) $*"; }

stage "1/7 training clips: 1500 x 8 s, seed 1001, FluidR3_GM and sf_GMbank"
"$llark" data synth --out train --clips 1500 --seconds 8 --seed 1001 --soundfont "$sf2/FluidR3_GM.sf2" --soundfont "$sf2/sf_GMbank.sf2"
# The manifest is written in the order clips finish; sort it by id so that everything after is independent of timing.
# Every line starts {"id":"synth_NNNNNN", so a byte-order sort of the lines is a sort by id.
LC_ALL=C sort -o train/manifest.jsonl train/manifest.jsonl
stage "2/7 held-out clips: 200 x 8 s, seed 2002, TimGM6mb (a soundfont training never hears)"
"$llark" data synth --out heldout --clips 200 --seconds 8 --seed 2002 --soundfont "$sf2/TimGM6mb.sf2"
LC_ALL=C sort -o heldout/manifest.jsonl heldout/manifest.jsonl

stage "3/7 spectral frames, pooled to 5 fps (train and held-out)"
"$llark" data embed --manifest train/manifest.jsonl --out data/embeddings --encoder "$encoder" --fps 5
"$llark" data embed --manifest heldout/manifest.jsonl --out heldout-embeddings --encoder "$encoder" --fps 5

stage "4/7 instruction pairs, seed 1"
[ -f data/pairs.jsonl ] || "$llark" data instruct --manifest train/manifest.jsonl --out data/pairs.jsonl --seed 1

stage "5/7 llark train (resumable)"
mkdir -p tokenizer && cp "$root/tests/fixtures/llama2-tokenizer-model/tokenizer.model" tokenizer/
cp "$recipe/train.json" train.json
if [ ! -f run/model/model.safetensors ]; then
  resume=(); [ -f run/state/latest.json ] && resume=(--resume)
  "$llark" train --config train.json --out run "${resume[@]}"
fi

stage "6/7 a second stage from that checkpoint, asking about instruments more often (resumable)"
cp "$recipe/train-instrument.json" train-instrument.json
if [ ! -f run-instrument/model/model.safetensors ]; then
  resume=(); [ -f run-instrument/state/latest.json ] && resume=(--resume)
  "$llark" train --config train-instrument.json --out run-instrument "${resume[@]}"
fi
rm -rf llark-demo && cp -r run-instrument/model llark-demo

stage "7/7 llark eval on the held-out clips"
"$llark" eval --manifest heldout/manifest.jsonl --local --model llark-demo --encoder "$encoder" --out eval --questions 2
echo "make-demo: done: $work/llark-demo (encoder: models/spectral); scores in $work/eval/eval.json"
