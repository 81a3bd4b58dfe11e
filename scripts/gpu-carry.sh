#!/bin/bash
# Run here, on the project's Debian 12 machine, before a GPU check: downloads the Debian packages
# scripts/gpu-check.sh unpacks on the GPU machine (which reaches no registry) into .carry/, a
# folder git ignores (through .git/info/exclude) and the device tool's `run` carries
# (carry: [".carry"]). Run it in the checkout that the device tool sends.
#   GoogleTest (headers and static libraries), nlohmann-json, sentencepiece (its library bundles
#   its own protobuf-lite), and pkgconf in case the GPU machine has no pkg-config.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/.carry
packages=(libgtest-dev nlohmann-json3-dev libsentencepiece-dev libsentencepiece0
          pkgconf pkgconf-bin libpkgconf3)

exclude=$(git -C "$root" rev-parse --path-format=absolute --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.carry/' "$exclude" 2>/dev/null || echo '/.carry/' >>"$exclude"

rm -rf "$dir"
mkdir -p "$dir"
chmod 777 "$dir"  # apt-get download writes as the _apt user where it can
if ! (cd "$dir" && apt-get download "${packages[@]}"); then
  apt-get update
  (cd "$dir" && apt-get download "${packages[@]}")
fi

ls -l "$dir"/*.deb
total=$(du -cb "$dir"/*.deb | tail -1 | cut -f1)
echo "gpu-carry: ${#packages[@]} packages, $((total / 1024)) KiB in .carry/ (the carry limit is 64 MiB)"
if git -C "$root" status --porcelain --ignored=no | grep -q '\.carry'; then
  echo "gpu-carry: .carry/ is not ignored" >&2
  exit 1
fi
