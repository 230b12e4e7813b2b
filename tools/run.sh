#!/usr/bin/env bash
# The README's main job. Until the services and the demo model land, it runs the language engine on the bundled
# tiny random-weight Llama: the machinery is real, the text is noise.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x tools/LLark.Cli/bin/Release/net10.0/llark ] || bash tools/setup.sh
echo "llark generate on tests/fixtures/llama-tiny/llama-mha-fp16 (random weights: expect noise)"
tools/LLark.Cli/bin/Release/net10.0/llark generate --model tests/fixtures/llama-tiny/llama-mha-fp16 \
  --prompt "Once upon a time" --max-new-tokens 48 "$@"
