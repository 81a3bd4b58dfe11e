#!/bin/sh
# Storing Mimi codes in a file and decoding them later. The file is headerless: the frames one
# after the other, each NUM_CODEBOOKS little-endian 16-bit codes (16 bytes per 80 ms with 8
# codebooks and the real Mimi). Decoding reads it back with framed=false in the caps, so mimidec
# cuts it into frames; docs/MEDIA-TYPE.md describes the format.
#
#   pipelines/codes-file.sh encode IN.wav OUT.mimi
#   pipelines/codes-file.sh decode IN.mimi OUT.wav
#   pipelines/codes-file.sh                    # both, on tests/data/speechlike.wav, in build/
#
# The file does not record the model or the codebook count: decode with the MODEL and
# NUM_CODEBOOKS used to encode. The default model is the small untrained one in
# tests/data/golden/mimi_tiny (noise, but the plumbing is real); with the real Mimi weights
# (see models/README.md):
#
#   MODEL=kyutai/moshiko-pytorch-bf16 pipelines/codes-file.sh encode speech.wav speech.mimi
#   MODEL=kyutai/moshiko-pytorch-bf16 pipelines/codes-file.sh decode speech.mimi decoded.wav
set -eu
. "$(dirname "$0")/env.sh"

encode() {
  gst-launch-1.0 -q \
    filesrc location="$1" ! wavparse ! audioconvert ! audioresample ! \
    mimienc model="$MODEL" num-codebooks="$NUM_CODEBOOKS" ! filesink location="$2"
  echo "wrote $2"
}

decode() {
  gst-launch-1.0 -q \
    filesrc location="$1" ! "audio/x-mimi,codebooks=$NUM_CODEBOOKS,framed=false" ! \
    mimidec model="$MODEL" ! \
    audioconvert ! audio/x-raw,format=S16LE ! wavenc ! filesink location="$2"
  echo "wrote $2"
}

case "${1:-}" in
  encode) [ $# -eq 3 ] || { echo "usage: $0 encode IN.wav OUT.mimi" >&2; exit 2; }; encode "$2" "$3" ;;
  decode) [ $# -eq 3 ] || { echo "usage: $0 decode IN.mimi OUT.wav" >&2; exit 2; }; decode "$2" "$3" ;;
  "")
    encode "$ROOT/tests/data/speechlike.wav" "$BUILD_DIR/speechlike.mimi"
    decode "$BUILD_DIR/speechlike.mimi" "$BUILD_DIR/speechlike-from-codes.wav"
    ;;
  *) echo "usage: $0 [encode IN.wav OUT.mimi | decode IN.mimi OUT.wav]" >&2; exit 2 ;;
esac
