#!/bin/sh
# Live subtitles: Kyutai STT transcribes an audio input, and its words, each timed from its
# start to its end, become a subtitle track beside the audio (Opus), muxed into Matroska, which
# broadcast tools, players (VLC, mpv) and ffmpeg read. OUT ending in .mkv writes a file;
# OUT=tcp:PORT serves a live Matroska stream instead (watch it with
# `gst-launch-1.0 tcpclientsrc port=PORT ! matroskademux ! ...` or `ffplay tcp://127.0.0.1:PORT`).
#
#   pipelines/live-subtitles.sh [IN.wav [OUT.mkv|tcp:PORT]]
#
# Defaults: tests/data/speechlike.wav -> build/subtitles.mkv with models/stt-tiny (tiny and
# untrained: gibberish subtitles). SRC replaces the input with a pipeline fragment, for example
# SRC=autoaudiosrc for live subtitles of a microphone. With the real weights (see
# models/README.md):
#
#   STT_MODEL=kyutai/stt-1b-en_fr SRC=autoaudiosrc pipelines/live-subtitles.sh - tcp:9000
#
# The words come out the model's delay (0.5 s for the 1B) after the audio, and a word only once
# the next one begins: the audio branch's queue holds the audio meanwhile, without a limit, so
# that the muxer can interleave them.
set -eu
. "$(dirname "$0")/env.sh"
in=${1:-$ROOT/tests/data/speechlike.wav}
out=${2:-$BUILD_DIR/subtitles.mkv}
DEVICE=${DEVICE:-cpu}
SRC=${SRC:-filesrc location=$in ! wavparse}
sink=$(matroska_sink "$out")
live=$(matroska_live "$out")

# $SRC and $sink are pipeline fragments, split into words on purpose.
# shellcheck disable=SC2086
gst-launch-1.0 -e \
  $SRC ! tee name=audio \
  audio. ! queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! \
    audioconvert ! audioresample ! opusenc ! mux.audio_0 \
  audio. ! queue ! kyutaistt model="$STT_MODEL" weights="$WEIGHTS" device="$DEVICE" ! \
    queue ! mux.subtitle_0 \
  matroskamux name=mux $live ! $sink
case "$out" in tcp:*) ;; *) echo "wrote $out" ;; esac
