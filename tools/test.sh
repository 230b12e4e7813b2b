#!/usr/bin/env bash
# The default test run (fast). Heavier suites: tools/test.sh --heavy
set -euo pipefail
cd "$(dirname "$0")/.."
filter="Category!=Heavy"
if [ "${1:-}" = "--heavy" ]; then filter="Category=Heavy"; fi
dotnet test LLark.Services.sln -c Release -nologo --filter "$filter" --logger "console;verbosity=normal"
