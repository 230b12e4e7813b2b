#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks and builds everything (Release).
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET 10 SDK is required (dotnet not found on PATH)" >&2
  exit 1
fi

# Debian packages the tests and tools use: the Python client (grpcio), the encoder cache (Redis),
# FluidSynth with two General MIDI soundfonts for `llark data synth`, and Chromium, which the gateway's try page test
# drives headless.
apt_packages=(python3-grpcio python3-grpc-tools python3-pip redis-server fluidsynth fluid-soundfont-gm timgm6mb-soundfont chromium)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi

# The Node packages the tests run, each installed again when its lock changes: the Kubernetes schema validator
# (k8s/validate), the official OpenAI SDK as a client of the gateway's OpenAI-compatible door (tests/openai-client), and
# buf, which lints the protos and checks them for breaking changes (tools/buf).
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: Node.js with npm is required (for k8s/validate, tests/openai-client and tools/buf)" >&2
  exit 1
fi
for folder in k8s/validate tests/openai-client tools/buf; do
  if ! cmp -s "$folder/package-lock.json" "$folder/node_modules/.installed-package-lock.json"; then
    npm ci --prefix "$folder" --no-audit --no-fund --loglevel=error
    cp "$folder/package-lock.json" "$folder/node_modules/.installed-package-lock.json"
  fi
done

dotnet build LLark.Services.sln -c Release -nologo -v minimal
