#!/bin/sh
# Live conversation: the microphone to Moshi, Moshi's voice to the speakers, and its
# inner-monologue text printed to the terminal as it comes. Stop it with Ctrl-C.
#
#   pipelines/conversation-live.sh
#
# The default model, models/moshi-tiny, is tiny and untrained: it answers with noise. With the
# real weights in the Hugging Face cache (see models/README.md); on a CPU the 7B model is far
# slower than real time, and moshilm then warns with the measured step time:
#
#   MOSHI_MODEL=kyutai/moshiko-pytorch-bf16 DEVICE=cuda pipelines/conversation-live.sh
#
# SRC and SINK replace the microphone and the speakers, for example for a test without sound
# card: SRC="audiotestsrc is-live=true num-buffers=50" SINK="fakesink sync=true".
set -eu
. "$(dirname "$0")/env.sh"
SRC=${SRC:-autoaudiosrc}
SINK=${SINK:-autoaudiosink}
DEVICE=${DEVICE:-cpu}

# $SRC and $SINK are pipeline fragments, split into words on purpose.
# shellcheck disable=SC2086
exec gst-launch-1.0 -e \
  $SRC ! queue ! moshibin model="$MOSHI_MODEL" weights="$WEIGHTS" device="$DEVICE" name=moshi ! \
  audioconvert ! audioresample ! $SINK \
  moshi.text_src ! fdsink fd=1 sync=false
