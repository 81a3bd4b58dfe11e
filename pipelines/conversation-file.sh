#!/bin/sh
# File conversation: a WAV of the user speaking in, Moshi's answer out as a WAV (24 kHz mono,
# as long as the input) and its inner-monologue text as a text file. The file is played through
# moshibin exactly as a live stream would be, just faster than real time when the machine can.
#
#   pipelines/conversation-file.sh [IN.wav [ANSWER.wav [TRANSCRIPT.txt]]]
#
# Defaults: tests/data/speechlike.wav -> build/answer.wav and build/transcript.txt with
# models/moshi-tiny, a tiny untrained model: the answer is noise and the text gibberish, which
# shows the plumbing only. With the real weights in the Hugging Face cache (see
# models/README.md; bfloat16 needs about 16 GB of memory for the 7B model):
#
#   MOSHI_MODEL=kyutai/moshiko-pytorch-bf16 pipelines/conversation-file.sh question.wav answer.wav text.txt
set -eu
. "$(dirname "$0")/env.sh"
in=${1:-$ROOT/tests/data/speechlike.wav}
answer=${2:-$BUILD_DIR/answer.wav}
transcript=${3:-$BUILD_DIR/transcript.txt}

gst-launch-1.0 -q \
  filesrc location="$in" ! wavparse ! \
  moshibin model="$MOSHI_MODEL" weights="$WEIGHTS" name=moshi ! \
  audioconvert ! audio/x-raw,format=S16LE ! wavenc ! filesink location="$answer" \
  moshi.text_src ! filesink location="$transcript"
echo "wrote $answer and $transcript"
