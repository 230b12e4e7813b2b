#!/usr/bin/env bash
# Our CPU engine beside llama.cpp on the very same random weights: `llark-bench generate` exports its model as a
# llama2.c checkpoint, llama.cpp's converter turns that into a GGUF (quantized to F16 and Q8_0 as asked), and each
# round runs both engines back to back, alternating which goes first, so drift on a shared machine hits both.
# Prints every round's figures, then per shape a markdown table of medians: decode and prefill tokens/s of each,
# their ratio (ours / llama.cpp, the median of the rounds' ratios; above 1 is ours faster) and peak resident memory.
#
#   bash tools/bench-peers.sh [--rounds 5] [--shapes "stories15m stories110m tinyllama"] [--formats "fp32 bf16 int8"]
#                             [--threads N] [--prompt-tokens 128] [--new-tokens 128] [--batches 1,4,8,16 | --no-batch]
#   LLAMA_CPP_DIR=/work/llama.cpp  a llama.cpp work tree with a CPU Release build in build/bin (see PINNED_LLAMA_CPP)
#   BENCH_PEERS_DIR=.llark/bench-peers  where the exported and converted models are kept between runs
#   LLARK_BENCH=tools/LLark.Bench/bin/Release/net10.0/llark-bench  the llark-bench to measure
#
# Formats pair as: our fp32 with llama.cpp F32, bf16 with F16, int8 with Q8_0 (`generate --weights`). Threads
# default to the core count, which is what the engine uses on its own (DOTNET_PROCESSOR_COUNT is set to it);
# llama.cpp gets the same -t. It downloads nothing: llama.cpp must already be built, llark-bench too.
#
# What the figures mean: ours is `generate` (a 128-token prompt, then 128 greedy tokens after it, one warm-up run
# first); llama.cpp's is `llama-bench -p 128 -n 128 -r 1` (one warm-up run each), whose decode test starts from an
# empty cache, so its tokens attend to 0..127 earlier positions where ours attend to 128..255. The batched table
# (`llark-bench batch --weights` beside `llama-batched-bench`) decodes after 64 cached
# tokens in both: aggregate tokens/s of the decode step, ours the median step, llama.cpp's the mean over 64 steps.
# At the pinned commit the converter handles grouped-query attention (n_kv_heads < n_heads) but holds the model in
# a fixed 2 GiB ggml context, so a shape over ~500M parameters (tinyllama) fails to convert and runs ours alone.
set -euo pipefail
cd "$(dirname "$0")/.."

# The llama.cpp commit the figures were taken against (tag b4747 and one commit); another one still runs, with a warning.
PINNED_LLAMA_CPP=c392e5094deaf2d1a7c18683214f007fad3fe42b

rounds=5
shapes="stories15m stories110m tinyllama"
formats="fp32 bf16 int8"
threads=$(nproc)
prompt_tokens=128
new_tokens=128
batches=1,4,8,16
batch_context=64
batch_steps=64
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --shapes) shapes=$2; shift 2 ;;
    --formats) formats=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --prompt-tokens) prompt_tokens=$2; shift 2 ;;
    --new-tokens) new_tokens=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --no-batch) batches=; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-peers: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done
for n in "$rounds" "$threads" "$prompt_tokens" "$new_tokens"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench-peers: '$n' is not a positive count" >&2; exit 2; }
done
for f in $formats; do
  case $f in fp32|bf16|int8) ;; *) echo "bench-peers: format '$f' is none of fp32 bf16 int8" >&2; exit 2 ;; esac
done

bench=${LLARK_BENCH:-tools/LLark.Bench/bin/Release/net10.0/llark-bench}
if [ ! -x "$bench" ]; then
  echo "bench-peers: $bench is not built; build it first: nice -n 10 dotnet build tools/LLark.Bench -c Release" >&2
  exit 2
fi

llama=${LLAMA_CPP_DIR:-/work/llama.cpp}
bin=$llama/build/bin
vocab=$llama/models/ggml-vocab-llama-spm.gguf
missing=
for tool in llama-bench llama-quantize llama-convert-llama2c-to-ggml; do [ -x "$bin/$tool" ] || missing+=" $tool"; done
[ -f "$vocab" ] || missing+=" models/ggml-vocab-llama-spm.gguf"
if [ -n "$missing" ]; then
  cat >&2 <<EOF
bench-peers: no usable llama.cpp at LLAMA_CPP_DIR=$llama (missing:$missing).
It needs a work tree of llama.cpp (https://github.com/ggml-org/llama.cpp) at commit $PINNED_LLAMA_CPP,
built for the CPU as Release with GGML_NATIVE on, whose build/bin holds llama-bench, llama-quantize,
llama-convert-llama2c-to-ggml and (for the batched table) llama-batched-bench; the vocabulary the converter copies
is the tree's models/ggml-vocab-llama-spm.gguf. Point LLAMA_CPP_DIR at it. This script downloads and builds nothing.
EOF
  exit 2
fi
llama_commit=$(git -C "$llama" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$llama_commit" != "$PINNED_LLAMA_CPP" ]; then
  echo "bench-peers: warning: llama.cpp in $llama is at $llama_commit, not the pinned $PINNED_LLAMA_CPP; figures may not compare with earlier ones" >&2
fi
[ -x "$bin/llama-batched-bench" ] || { [ -z "$batches" ] || echo "bench-peers: no llama-batched-bench in $bin: no batched table" >&2; batches=; }

# What this llark-bench can do: the --weights option and the shapes are newer than the verb.
gen_help=$("$bench" generate --help)
batch_help=$("$bench" batch --help)
gen_weights=no; grep -q -- '--weights' <<<"$gen_help" && gen_weights=yes
batch_weights=no; grep -q -- '--weights' <<<"$batch_help" && batch_weights=yes
run_shapes=
for s in $shapes; do
  if grep -qw -- "$s" <<<"$gen_help"; then run_shapes+=" $s"; else echo "bench-peers: this llark-bench has no shape '$s': skipped" >&2; fi
done
run_formats=
for f in $formats; do
  if [ "$f" = fp32 ] || [ "$gen_weights" = yes ]; then run_formats+=" $f"; else echo "bench-peers: this llark-bench has no --weights: '$f' skipped" >&2; fi
done
batch_formats=
if [ -n "$batches" ]; then
  for f in $run_formats; do
    if [ "$f" = fp32 ] || [ "$batch_weights" = yes ]; then batch_formats+=" $f"; fi
  done
fi
[ -n "$run_shapes" ] && [ -n "$run_formats" ] || { echo "bench-peers: nothing to run" >&2; exit 2; }

work=${BENCH_PEERS_DIR:-.llark/bench-peers}
mkdir -p "$work"
results=$work/results-$(date +%Y%m%d-%H%M%S).jsonl
: >"$results"
gguf_type() { case $1 in fp32) echo f32 ;; bf16) echo f16 ;; int8) echo q8_0 ;; esac; }
quant_name() { case $1 in fp32) echo F32 ;; bf16) echo F16 ;; int8) echo Q8_0 ;; esac; }

# The models are kept while llark-bench (whose seed and layout make the weights) and llama.cpp stay the same.
stamp_of() { { cat "$bench" "$(dirname "$bench")"/*.dll 2>/dev/null | sha256sum || true; echo "$llama_commit"; } | sha256sum | cut -c1-16; }
stamp=$(stamp_of)
declare -A llama_ok
notes=
prepare() {
  local shape=$1 dir=$work/$1 f
  if [ "$(cat "$dir/stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    echo "bench-peers: exporting $shape (random weights) and converting it for llama.cpp" >&2
    "$bench" generate --shape "$shape" --prompt-tokens 1 --new-tokens 1 --repeat 1 --json --export-llama2c "$dir/model.bin" >"$dir/export.json"
    if "$bin/llama-convert-llama2c-to-ggml" --copy-vocab-from-model "$vocab" --llama2c-model "$dir/model.bin" \
        --llama2c-output-model "$dir/f32.gguf" >"$dir/convert.log" 2>&1 && [ -s "$dir/f32.gguf" ]; then
      :
    else
      rm -f "$dir/f32.gguf"
      echo "converter failed: $(grep -m1 -iE 'error|not enough|abort' "$dir/convert.log" || tail -n1 "$dir/convert.log")" >"$dir/unavailable"
    fi
    rm -f "$dir/model.bin"
    echo "$stamp" >"$dir/stamp"
  fi
  for f in $run_formats; do
    local t; t=$(gguf_type "$f")
    if [ -f "$dir/unavailable" ]; then llama_ok[$shape/$f]=no; continue; fi
    if [ ! -s "$dir/$t.gguf" ]; then
      "$bin/llama-quantize" "$dir/f32.gguf" "$dir/$t.gguf" "$(quant_name "$f")" >"$dir/quantize-$t.log" 2>&1 \
        || { echo "bench-peers: llama-quantize to $t failed, see $dir/quantize-$t.log" >&2; exit 1; }
    fi
    llama_ok[$shape/$f]=yes
  done
  if [ -f "$dir/unavailable" ]; then
    echo "bench-peers: $shape: no llama.cpp model ($(cat "$dir/unavailable")); ours runs alone" >&2
    notes+="$shape: no llama.cpp figures, $(cat "$dir/unavailable")"$'\n'
  fi
}

# Runs a command with peak resident memory in KiB written to $1: GNU time where there is one, else VmHWM polled.
run_measured() {
  local rss=$1; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v -o "$rss.time" "$@" || return 1
    awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$rss.time" >"$rss"
  else
    "$@" & local pid=$! hwm=0 v
    while kill -0 "$pid" 2>/dev/null; do
      v=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$v" ] && hwm=$v
      sleep 0.05
    done
    wait "$pid" || return 1
    echo "$hwm" >"$rss"
  fi
}

fail() { echo "bench-peers: $1 failed; its output:" >&2; tail -n 20 "$2" >&2; exit 1; }

# Appends one result line to $results and prints it as a round's figure.
record() {
  python3 - "$results" "$@" <<'EOF'
import json, sys
path, kind, round_, shape, fmt, engine, out, rss = sys.argv[1:9]
text = open(out).read()
rows = []
if kind == "single" and engine == "ours":
    j = json.loads([l for l in text.splitlines() if l.startswith("{")][-1])
    r = dict(decode=j["decode_tokens_per_second"], prefill=j["prefill_tokens_per_second"], rss=j["peak_rss_bytes"])
elif kind == "single":
    tests = json.loads(text[text.index("["):])
    tg = next(t for t in tests if t["n_prompt"] == 0)
    pp = next(t for t in tests if t["n_gen"] == 0)
    r = dict(decode=tg["avg_ts"], prefill=pp["avg_ts"], rss=int(open(rss).read().strip()) * 1024)
elif engine == "ours":
    j = json.loads([l for l in text.splitlines() if l.startswith("{")][-1])
    r = dict(batch={str(x["Batch"]): x["TokensPerSecond"] for x in j["rows"]})
else:
    lines = [json.loads(l) for l in text.splitlines() if l.startswith('{"n_kv_max"')]
    r = dict(batch={str(x["pl"]): x["speed_tg"] for x in lines})
r.update(kind=kind, round=int(round_), shape=shape, format=fmt, engine=engine)
with open(path, "a") as f:
    f.write(json.dumps(r) + "\n")
name = "ours" if engine == "ours" else "llama.cpp"
if kind == "single":
    print(f"  {name:9} decode {r['decode']:8.1f} tok/s  prefill {r['prefill']:8.1f} tok/s  peak RSS {r['rss'] / 2**20:7.0f} MiB", flush=True)
else:
    print(f"  {name:9} aggregate decode tok/s " + "  ".join(f"B={b}: {v:.1f}" for b, v in r["batch"].items()), flush=True)
EOF
}

run_single() {
  local round=$1 shape=$2 fmt=$3 engine=$4 out=$work/last-$4.out
  if [ "$engine" = ours ]; then
    local args=(generate --shape "$shape" --prompt-tokens "$prompt_tokens" --new-tokens "$new_tokens" --repeat 1 --threads "$threads" --json)
    [ "$gen_weights" = yes ] && args+=(--weights "$fmt")
    DOTNET_PROCESSOR_COUNT=$threads "$bench" "${args[@]}" >"$out" 2>&1 || fail "llark-bench generate ($shape $fmt)" "$out"
  else
    run_measured "$work/last.rss" "$bin/llama-bench" -m "$work/$shape/$(gguf_type "$fmt").gguf" \
      -p "$prompt_tokens" -n "$new_tokens" -t "$threads" -r 1 -o json >"$out" 2>"$out.err" \
      || { cat "$out.err" >>"$out"; fail "llama-bench ($shape $fmt)" "$out"; }
  fi
  record single "$round" "$shape" "$fmt" "$engine" "$out" "$work/last.rss"
}

run_batch() {
  local round=$1 shape=$2 fmt=$3 engine=$4 out=$work/last-batch-$4.out
  if [ "$engine" = ours ]; then
    local args=(batch --shape "$shape" --batches "$batches" --context "$batch_context" --steps "$batch_steps" --json)
    [ "$batch_weights" = yes ] && args+=(--weights "$fmt")
    DOTNET_PROCESSOR_COUNT=$threads "$bench" "${args[@]}" >"$out" 2>&1 || fail "llark-bench batch ($shape $fmt)" "$out"
  else
    local max=${batches##*,} b
    for b in ${batches//,/ }; do if [ "$b" -gt "$max" ]; then max=$b; fi; done
    "$bin/llama-batched-bench" -m "$work/$shape/$(gguf_type "$fmt").gguf" -c $((max * (batch_context + batch_steps))) \
      -b 2048 -ub 512 -npp "$batch_context" -ntg "$batch_steps" -npl "$batches" -t "$threads" -tb "$threads" \
      --output-format jsonl >"$out" 2>&1 || fail "llama-batched-bench ($shape $fmt)" "$out"
  fi
  record batch "$round" "$shape" "$fmt" "$engine" "$out" -
}

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)
ours_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || ours_commit+="+changes"
echo "bench-peers: ${cpu:-unknown CPU}, $(nproc) cores, $threads threads; ours $ours_commit, llama.cpp ${llama_commit:0:12}" \
  "$([ "$llama_commit" = "$PINNED_LLAMA_CPP" ] && echo "(pinned)" || echo "(NOT the pinned ${PINNED_LLAMA_CPP:0:12})")"
echo "shapes:$run_shapes  formats:$run_formats  rounds: $rounds  prompt $prompt_tokens, decode $new_tokens tokens" \
  "$([ -n "$batch_formats" ] && echo " batched:$batch_formats at $batches")"

load_start=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load_start" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  echo "bench-peers: warning: load average $load_start on $(nproc) cores: other work shares the CPUs, and the figures" \
    "will measure how each engine copes with that as much as its speed (llama.cpp's threads wait on each other)" >&2
fi

for shape in $run_shapes; do prepare "$shape"; done

# Both engines' runs of one kind (single or batch) for a shape and format, in this round's order.
run_pair() {
  local kind=$1 r=$2 shape=$3 fmt=$4 label=$5 engine
  echo "round $r/$rounds  $shape  ${label}ours $fmt / llama.cpp $(gguf_type "$fmt")  (load average $(cut -d' ' -f1 /proc/loadavg))"
  for engine in $order; do
    [ "$engine" = llama ] && [ "${llama_ok[$shape/$fmt]:-}" != yes ] && continue
    "run_$kind" "$r" "$shape" "$fmt" "$engine"
  done
}

for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order="ours llama"; else order="llama ours"; fi
  for shape in $run_shapes; do
    for fmt in $run_formats; do run_pair single "$r" "$shape" "$fmt" ""; done
    for fmt in $batch_formats; do run_pair batch "$r" "$shape" "$fmt" "batched decode, "; done
  done
done

python3 - "$results" "${cpu:-unknown CPU}" "$(date +%Y-%m-%d)" "$llama_commit" "$ours_commit" "$threads" "$rounds" \
  "$prompt_tokens" "$new_tokens" "$batch_context" "$notes" "$load_start $(cut -d' ' -f1 /proc/loadavg)" <<'EOF'
import json, statistics, sys
path, cpu, day, llama_commit, ours_commit, threads, rounds, pp, tg, ctx, notes, load = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
gguf = {"fp32": "f32", "bf16": "f16", "int8": "q8_0"}
def med(kind, shape, fmt, engine, key):
    v = [r[key] for r in rows if (r["kind"], r["shape"], r["format"], r["engine"]) == (kind, shape, fmt, engine)]
    return statistics.median(v) if v else None
def num(v, f="{:.1f}"): return "–" if v is None else f.format(v)
def ratio(pairs):
    # The median of each round's ratio: the two engines of a round ran back to back, on the same machine state.
    v = [a / b for a, b in pairs if a is not None and b]
    return "–" if not v else f"{statistics.median(v):.2f}×"
def pairs(kind, shape, fmt, get):
    by = {}
    for r in rows:
        if (r["kind"], r["shape"], r["format"]) == (kind, shape, fmt):
            by.setdefault(r["round"], {})[r["engine"]] = get(r)
    return [(p.get("ours"), p.get("llama")) for p in by.values()]
def mib(v): return "–" if v is None else f"{v / 2**20:.0f} MiB"
print(f"\n## Ours against llama.cpp, CPU, random weights\n")
print(f"{cpu}, {threads} threads, {day}; ours {ours_commit}, llama.cpp {llama_commit[:12]}; median of {rounds} paired rounds "
      f"(order alternating); prompt {pp} tokens, decode {tg} tokens. "
      f"Ratio: ours / llama.cpp, the median of the rounds' ratios. Load average {' at the start, '.join(load.split())} at the end.")
for shape in dict.fromkeys(r["shape"] for r in rows):
    print(f"\n### {shape}\n")
    for note in notes.splitlines():
        if note.startswith(shape + ":"): print(note + "\n")
    print("| ours / llama.cpp | decode ours tok/s | decode llama.cpp tok/s | ratio | prefill ours tok/s | prefill llama.cpp tok/s | ratio | peak RSS ours | peak RSS llama.cpp |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for fmt in dict.fromkeys(r["format"] for r in rows if r["shape"] == shape and r["kind"] == "single"):
        m = {(e, k): med("single", shape, fmt, e, k) for e in ("ours", "llama") for k in ("decode", "prefill", "rss")}
        rd = ratio(pairs("single", shape, fmt, lambda r: r["decode"]))
        rp = ratio(pairs("single", shape, fmt, lambda r: r["prefill"]))
        print(f"| {fmt} / {gguf[fmt]} | {num(m['ours', 'decode'])} | {num(m['llama', 'decode'])} | {rd} "
              f"| {num(m['ours', 'prefill'])} | {num(m['llama', 'prefill'])} | {rp} "
              f"| {mib(m['ours', 'rss'])} | {mib(m['llama', 'rss'])} |")
    batch = [r for r in rows if r["shape"] == shape and r["kind"] == "batch"]
    for fmt in dict.fromkeys(r["format"] for r in batch):
        print(f"\nBatched decode, {fmt} / {gguf[fmt]}, {ctx} tokens cached a sequence: aggregate tok/s\n")
        print("| batch | ours | llama.cpp | ratio |")
        print("| ---: | ---: | ---: | ---: |")
        sizes = dict.fromkeys(b for r in batch if r["format"] == fmt for b in r["batch"])
        for b in sorted(sizes, key=int):
            def m(e):
                v = [r["batch"][b] for r in batch if r["format"] == fmt and r["engine"] == e and b in r["batch"]]
                return statistics.median(v) if v else None
            print(f"| {b} | {num(m('ours'))} | {num(m('llama'))} | {ratio(pairs('batch', shape, fmt, lambda r: r['batch'].get(b)))} |")
print(f"\n(per-round figures: {path})")
EOF
