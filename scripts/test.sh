#!/bin/sh
# Builds gst-moshi and runs the whole test suite.
set -eu
cd "$(dirname "$0")/.."
scripts/build.sh
meson test -C build --print-errorlogs
