#!/usr/bin/env bash
# The default test run (fast; the fuzz properties run a few iterations from a fixed seed). Heavier suites:
#   tools/test.sh --heavy   the Category=Heavy tests
#   tools/test.sh --fuzz    the Category=Fuzz properties, each for LLARK_FUZZ_SECONDS (default 60) from a random seed;
#                           a failure prints its seed: replay it with LLARK_FUZZ_SEED=<seed> tools/test.sh --fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
filter="Category!=Heavy"
case "${1:-}" in
  --heavy) filter="Category=Heavy" ;;
  --fuzz)
    filter="Category=Fuzz"
    export LLARK_FUZZ_SECONDS="${LLARK_FUZZ_SECONDS:-60}"
    echo "test: fuzzing each property for ${LLARK_FUZZ_SECONDS} s" >&2
    ;;
esac
# The deployment tests render k8s/ with `kubectl kustomize` (kustomize v5); Debian's own kubectl is too old for it.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "test: kubectl not found: skipping the Category=Kubectl deployment tests (render and validate k8s/)" >&2
  filter="$filter&Category!=Kubectl"
fi
# The failures are printed again at the end from a TRX log: the console interleaves them with a thousand passes, and
# CI keeps only the tail of what a run prints.
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
status=0
dotnet test LLark.Services.sln -c Release -nologo --filter "$filter" --logger "console;verbosity=normal" \
  --logger "trx;LogFileName=tests.trx" --results-directory "$results" || status=$?
if [ "$status" -ne 0 ]; then
  python3 tools/test-failures.py "$results"/*.trx || true
fi
exit "$status"
