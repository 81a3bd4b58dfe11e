#!/bin/sh
# Broadcast voice bot: Moshi answers an input, and its voice (Opus) and its text (as a subtitle
# track, timed to the words) are muxed into Matroska, which broadcast tools, players (VLC, mpv)
# and ffmpeg read. OUT ending in .mkv writes a file; OUT=tcp:PORT serves a live Matroska stream
# instead (watch it with `gst-launch-1.0 tcpclientsrc port=PORT ! matroskademux ! ...` or
# `ffplay tcp://127.0.0.1:PORT`).
#
#   pipelines/broadcast-bot.sh [IN.wav [OUT.mkv|tcp:PORT]]
#
# Defaults: tests/data/speechlike.wav -> build/broadcast.mkv with models/moshi-tiny (tiny and
# untrained: noise and gibberish subtitles). SRC replaces the input with a pipeline fragment, for
# example SRC=autoaudiosrc for a live bot. With the real weights (see models/README.md):
#
#   MOSHI_MODEL=kyutai/moshiko-pytorch-bf16 DEVICE=cuda SRC=autoaudiosrc pipelines/broadcast-bot.sh - tcp:9000
set -eu
. "$(dirname "$0")/env.sh"
in=${1:-$ROOT/tests/data/speechlike.wav}
out=${2:-$BUILD_DIR/broadcast.mkv}
DEVICE=${DEVICE:-cpu}
SRC=${SRC:-filesrc location=$in ! wavparse}
sink=$(matroska_sink "$out")
live=$(matroska_live "$out")

# $SRC and $sink are pipeline fragments, split into words on purpose.
# shellcheck disable=SC2086
gst-launch-1.0 -e \
  $SRC ! moshibin model="$MOSHI_MODEL" weights="$WEIGHTS" device="$DEVICE" name=moshi ! \
  audioconvert ! audioresample ! opusenc ! queue ! mux.audio_0 \
  moshi.text_src ! queue ! mux.subtitle_0 \
  matroskamux name=mux $live ! $sink
case "$out" in tcp:*) ;; *) echo "wrote $out" ;; esac
