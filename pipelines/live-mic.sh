#!/bin/sh
# Live microphone -> Mimi -> speakers, at 1.1 kbps with the real Mimi: 8 codebooks of 2048
# entries (11 bits each) 12.5 times a second = 8 x 11 x 12.5 = 1100 bit/s of information
# (carried as 16-bit words: 1.6 kbit/s on the wire). mimienc adds one frame (80 ms) of latency.
# Stop it with Ctrl-C.
#
#   pipelines/live-mic.sh
#
# The default model is the small untrained one in tests/data/golden/mimi_tiny, which turns
# speech into noise; for real speech use the real Mimi weights (see models/README.md):
#
#   MODEL=kyutai/moshiko-pytorch-bf16 pipelines/live-mic.sh
#
# SRC and SINK replace the microphone and the speakers, for example for a test without sound
# card: SRC="audiotestsrc is-live=true num-buffers=50" SINK="fakesink sync=true".
set -eu
. "$(dirname "$0")/env.sh"
SRC=${SRC:-autoaudiosrc}
SINK=${SINK:-autoaudiosink}

# $SRC and $SINK are split into words on purpose: they are pipeline fragments.
# shellcheck disable=SC2086
gst-launch-1.0 -e \
  $SRC ! audioconvert ! audioresample ! queue ! \
  mimienc model="$MODEL" num-codebooks="$NUM_CODEBOOKS" ! \
  mimidec model="$MODEL" ! \
  audioconvert ! audioresample ! queue ! $SINK
