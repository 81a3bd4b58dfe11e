#!/bin/sh
# Downloads a Kyutai Moshi repository into the local Hugging Face cache, for machines with
# internet access. Nothing in gst-moshi downloads at build or run time; after this, pass the
# repository id as the model (model=kyutai/moshiko-pytorch-bf16, --model ...).
#
#   models/download.sh [REPO]        default REPO: kyutai/moshiko-pytorch-bf16 (about 16 GB)
#
# Uses huggingface-cli when it is installed (pip install huggingface_hub), which fills the cache
# exactly as gst-moshi reads it. Otherwise it fetches the files with curl into the same layout:
# $HF_HUB_CACHE (else $HF_HOME/hub, else ~/.cache/huggingface/hub)/models--ORG--NAME/
# {refs/main, snapshots/<commit>/...}. Copy that folder to machines without internet.
set -eu
repo=${1:-kyutai/moshiko-pytorch-bf16}
if command -v huggingface-cli >/dev/null 2>&1; then
  exec huggingface-cli download "$repo"
fi
command -v curl >/dev/null 2>&1 || { echo "download.sh: needs huggingface-cli or curl" >&2; exit 1; }

if [ -n "${HF_HUB_CACHE:-}" ]; then cache=$HF_HUB_CACHE
elif [ -n "${HF_HOME:-}" ]; then cache=$HF_HOME/hub
else cache=${XDG_CACHE_HOME:-$HOME/.cache}/huggingface/hub
fi
base="https://huggingface.co"
# The commit of the main branch, and the file list, from the Hub API.
info=$(curl -fsSL "$base/api/models/$repo/revision/main")
commit=$(printf '%s' "$info" | tr ',' '\n' | sed -n 's/.*"sha": *"\([0-9a-f]\{40\}\)".*/\1/p' | head -n 1)
files=$(printf '%s' "$info" | tr ',' '\n' | sed -n 's/.*"rfilename": *"\([^"]*\)".*/\1/p')
[ -n "$commit" ] || { echo "download.sh: cannot read the commit of $repo" >&2; exit 1; }

dir="$cache/models--$(printf '%s' "$repo" | sed 's|/|--|')"
mkdir -p "$dir/refs" "$dir/snapshots/$commit"
printf '%s' "$commit" > "$dir/refs/main"
for f in $files; do
  case "$f" in
    *.safetensors|*.model|*.json) ;;
    *) continue ;;
  esac
  echo "fetching $f"
  mkdir -p "$(dirname "$dir/snapshots/$commit/$f")"
  curl -fL --retry 3 -C - -o "$dir/snapshots/$commit/$f" "$base/$repo/resolve/$commit/$f"
done
echo "done: model=$repo (in $dir)"
