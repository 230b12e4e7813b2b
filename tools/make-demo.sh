#!/usr/bin/env bash
# Makes the bundled demo LLark (models/llark-demo + models/jukebox-demo) from nothing, with the pipeline's own
# commands, on a CPU: synthetic labelled music -> a tiny Jukebox (data-initialised codebook, prior trained on
# next-code prediction) -> embeddings -> instruction pairs -> llark train -> llark eval on held-out clips from a seed
# and soundfont that training never sees. Every stage is resumable: run it again after a stop and it goes on.
#
#   bash tools/make-demo.sh [WORK_DIR]      # default .llark/demo; the result is WORK_DIR/llark-demo, WORK_DIR/jukebox-demo
#
# The recipe's files are in tools/demo/: train.json (the llark train config) and prior-clips.txt (the training clips,
# in order, that the codebook and the prior were fitted on). Stages and their times: tools/demo/README.md; scores:
# docs/experiments/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(realpath -m "${1:-$root/.llark/demo}")
recipe="$root/tools/demo"
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
# The Jukebox verbs run one libtorch thread: on small machines that avoids oversubscribing the cores.
export OMP_NUM_THREADS=1

stage "1/7 training clips: 1500 x 8 s, seed 1001, FluidR3_GM and sf_GMbank"
"$llark" data synth --out train --clips 1500 --seconds 8 --seed 1001 --soundfont "$sf2/FluidR3_GM.sf2" --soundfont "$sf2/sf_GMbank.sf2"
# The manifest is written in the order clips finish; sort it by id so that everything after is independent of timing.
# Every line starts {"id":"synth_NNNNNN", so a byte-order sort of the lines is a sort by id.
LC_ALL=C sort -o train/manifest.jsonl train/manifest.jsonl
stage "2/7 held-out clips: 200 x 8 s, seed 2002, TimGM6mb (a soundfont training never hears)"
"$llark" data synth --out heldout --clips 200 --seconds 8 --seed 2002 --soundfont "$sf2/TimGM6mb.sf2"

stage "3/7 tiny Jukebox: fresh prior, codebook from the clips' encoder outputs, prior trained 3000 steps"
# The subset manifest sits beside train/manifest.jsonl: its clips' audio paths are relative to that folder.
awk 'NR == FNR { line[substr($0, 8, 12)] = $0; next } { print line[$1] }' train/manifest.jsonl "$recipe/prior-clips.txt" > train/prior-subset.jsonl
[ -f enc0/jukebox_encoder.json ] || "$llark" jukebox new-prior --like "$root/models/jukebox-tiny" --out enc0 --seed 1
[ -f enc1/jukebox_encoder.json ] || "$llark" jukebox init-codebook --encoder enc0 --audio train/prior-subset.jsonl --out enc1 --clips 300
if [ ! -f jukebox-demo/jukebox_encoder.json ]; then
  resume=(); [ -f enc2/train_state.safetensors ] && resume=(--resume)
  "$llark" jukebox train-prior --encoder enc1 --audio train/prior-subset.jsonl --out enc2 --steps 3000 --lr 1e-3 --save-every 500 "${resume[@]}"
  rm -rf jukebox-demo.partial && mkdir jukebox-demo.partial
  cp enc2/jukebox_encoder.json enc2/vqvae.safetensors enc2/prior_level_2.safetensors jukebox-demo.partial/
  mv jukebox-demo.partial jukebox-demo
fi
unset OMP_NUM_THREADS

stage "4/7 embeddings at 5 fps (train and held-out)"
"$llark" data embed --manifest train/manifest.jsonl --out data/embeddings --encoder jukebox-demo --fps 5
"$llark" data embed --manifest heldout/manifest.jsonl --out heldout-embeddings --encoder jukebox-demo --fps 5

stage "5/7 instruction pairs, seed 1"
[ -f data/pairs.jsonl ] || "$llark" data instruct --manifest train/manifest.jsonl --out data/pairs.jsonl --seed 1

stage "6/7 llark train (resumable)"
mkdir -p tokenizer && cp "$root/tests/fixtures/llama2-tokenizer-model/tokenizer.model" tokenizer/
cp "$recipe/train.json" train.json
if [ ! -f run/model/model.safetensors ]; then
  resume=(); [ -f run/state/latest.json ] && resume=(--resume)
  "$llark" train --config train.json --out run "${resume[@]}"
fi
rm -rf llark-demo && cp -r run/model llark-demo

stage "7/7 llark eval on the held-out clips"
"$llark" eval --manifest heldout/manifest.jsonl --local --model llark-demo --encoder jukebox-demo --out eval --questions 2
echo "make-demo: done: $work/llark-demo and $work/jukebox-demo; scores in $work/eval/eval.json"
