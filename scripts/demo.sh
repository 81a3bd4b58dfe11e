#!/bin/sh
# The main job: builds gst-moshi, then runs the round-trip sample pipeline: tests/data/speechlike.wav
# goes through mimienc and mimidec (GStreamer elements, frame by frame as a live stream) with the
# small model shipped in tests/data, and the result is build/demo-roundtrip.wav.
# pipelines/wav-roundtrip.sh takes the plugin from build/ (GST_PLUGIN_PATH) and says how to use
# the real Mimi weights.
set -eu
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR="$PWD/build" pipelines/wav-roundtrip.sh tests/data/speechlike.wav build/demo-roundtrip.wav
