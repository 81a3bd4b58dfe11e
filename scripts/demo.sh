#!/bin/sh
# The main job: builds gst-moshi, then streams a WAV file through Mimi (encode and decode, frame
# by frame) with the small model shipped in tests/data. The result is build/demo-roundtrip.wav.
set -eu
cd "$(dirname "$0")/.."
scripts/build.sh
build/tools/mimi-codec roundtrip tests/data/speechlike.wav build/demo-roundtrip.wav \
  --model tests/data/golden/mimi_tiny --streaming
