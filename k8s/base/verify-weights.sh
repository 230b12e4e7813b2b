#!/bin/sh
# verify-weights.sh MODEL_DIR MANIFEST
# Run before a model service starts: every file the manifest (sha256sum's format; '#' comments) lists must match,
# and the folder may hold no file it does not list. A manifest with no entries fails, since it means nobody pinned
# the weights for this deployment. Exit 0 when the folder is exactly what the manifest says.
set -eu
dir=$1
manifest=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

grep -v -e '^#' -e '^[[:space:]]*$' "$manifest" > "$work/entries" || true
if [ ! -s "$work/entries" ]; then
  echo "verify-weights: $manifest lists no files; pin the weights first (cd MODEL_DIR && sha256sum -- *)" >&2
  exit 1
fi

cd "$dir"
sed 's/^[0-9a-fA-F]\{64\} [ *]//' "$work/entries" | sort > "$work/listed"
# Hidden entries at the top (a downloader's .cache) and a file system's lost+found are not the model's.
find . \( -path './.*' -o -name lost+found \) -prune -o -type f -print | sed 's|^\./||' | sort > "$work/present"
unlisted=$(comm -13 "$work/listed" "$work/present")
if [ -n "$unlisted" ]; then
  echo "verify-weights: $dir holds files that $manifest does not list:" $unlisted >&2
  exit 1
fi
if ! sha256sum --check --strict --quiet "$work/entries" >&2; then
  echo "verify-weights: $dir does not match $manifest" >&2
  exit 1
fi
echo "verify-weights: $(wc -l < "$work/entries") files in $dir match $manifest"
