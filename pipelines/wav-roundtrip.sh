#!/bin/sh
# WAV -> Mimi codes -> WAV. Encodes a WAV file with mimienc and decodes the codes straight away
# with mimidec, frame by frame as a live stream would, and writes 16-bit mono WAV at the model's
# rate (24 kHz). This is what scripts/demo.sh runs.
#
#   pipelines/wav-roundtrip.sh [IN.wav [OUT.wav]]
#
# Defaults: tests/data/speechlike.wav -> build/roundtrip.wav with the small untrained model in
# tests/data/golden/mimi_tiny, so the result only shows that the plumbing works. With the real
# Mimi weights (see models/README.md):
#
#   MODEL=kyutai/moshiko-pytorch-bf16 pipelines/wav-roundtrip.sh speech.wav decoded.wav
#
# MODEL may be a repository id in the local Hugging Face cache, a directory or a .safetensors
# file. NUM_CODEBOOKS (default 8, 1.1 kbps with the real Mimi; up to 32) sets the quality.
set -eu
. "$(dirname "$0")/env.sh"
in=${1:-$ROOT/tests/data/speechlike.wav}
out=${2:-$BUILD_DIR/roundtrip.wav}

gst-launch-1.0 -q \
  filesrc location="$in" ! wavparse ! audioconvert ! audioresample ! \
  mimienc model="$MODEL" num-codebooks="$NUM_CODEBOOKS" ! \
  mimidec model="$MODEL" ! \
  audioconvert ! audio/x-raw,format=S16LE ! wavenc ! filesink location="$out"
echo "wrote $out"
