#!/bin/sh
# Builds gst-moshi and runs the whole test suite: first in ./build, then again under
# AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer in ./build-asan
# (scripts/sanitize.sh). `scripts/test.sh --no-sanitizers` runs only the first, quick part.
set -eu
cd "$(dirname "$0")/.."
sanitizers=yes
for arg in "$@"; do
  case $arg in
    --no-sanitizers) sanitizers=no ;;
    *) echo "usage: scripts/test.sh [--no-sanitizers]" >&2; exit 2 ;;
  esac
done
scripts/build.sh
meson test -C build --print-errorlogs
if [ "$sanitizers" = yes ]; then
  scripts/sanitize.sh
fi
