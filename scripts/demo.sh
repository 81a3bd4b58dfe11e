#!/bin/sh
# The main job: builds gst-moshi, then has a conversation with Moshi from a file, through the
# GStreamer elements: tests/data/speechlike.wav goes into moshibin, Moshi's answer comes out as
# build/answer.wav and its inner-monologue text as build/transcript.txt. It uses the small
# untrained models in models/moshi-tiny, so the answer is noise: it shows the plumbing only.
# pipelines/conversation-file.sh says how to use Kyutai's real weights.
set -eu
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR="$PWD/build" pipelines/conversation-file.sh tests/data/speechlike.wav build/answer.wav \
  build/transcript.txt
