#!/bin/sh
# Configures (once) and builds gst-moshi in ./build. Extra arguments go to `meson setup`.
set -eu
cd "$(dirname "$0")/.."
. ./scripts/lib.sh
setup_build build "$@"
ninja -C build
