#!/usr/bin/env bash
# The default test run (fast). Heavier suites: tools/test.sh --heavy
set -euo pipefail
cd "$(dirname "$0")/.."
filter="Category!=Heavy"
if [ "${1:-}" = "--heavy" ]; then filter="Category=Heavy"; fi
# The deployment tests render k8s/ with `kubectl kustomize` (kustomize v5); Debian's own kubectl is too old for it.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "test: kubectl not found: skipping the Category=Kubectl deployment tests (render and validate k8s/)" >&2
  filter="$filter&Category!=Kubectl"
fi
dotnet test LLark.Services.sln -c Release -nologo --filter "$filter" --logger "console;verbosity=normal"
