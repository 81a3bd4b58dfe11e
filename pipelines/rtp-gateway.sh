#!/bin/sh
# Telephony / RTP gateway: a caller's voice arrives as RTP on UDP, goes through Moshi, and Moshi's
# voice leaves as RTP for another port. CODEC=pcmu is G.711 mu-law at 8 kHz (payload type 0, 20 ms
# packets, what SIP phones send); CODEC=opus is Opus at 48 kHz (payload type 96).
# This is the media path only: for real calls over SIP (codec negotiation, a port pair and a
# conversation per call, many calls at once) use moshi-gateway, see docs/GATEWAY.md.
#
#   IN_PORT=5004 OUT_HOST=127.0.0.1 OUT_PORT=5006 CODEC=pcmu pipelines/rtp-gateway.sh
#
# It runs until stopped (Ctrl-C sends EOS and exits cleanly). Try it with a sender and a
# receiver on the same machine:
#
#   gst-launch-1.0 audiotestsrc is-live=true ! audioresample ! audio/x-raw,rate=8000 ! \
#     mulawenc ! rtppcmupay ! udpsink host=127.0.0.1 port=5004
#   gst-launch-1.0 udpsrc port=5006 caps="application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0" ! \
#     rtpjitterbuffer ! rtppcmudepay ! mulawdec ! autoaudiosink
#
# The default model, models/moshi-tiny, is tiny and untrained (it answers with noise). With the
# real weights in the Hugging Face cache (see models/README.md), on a GPU for real time:
#
#   MOSHI_MODEL=kyutai/moshiko-pytorch-bf16 DEVICE=cuda pipelines/rtp-gateway.sh
#
# TEXT_SINK receives Moshi's text (default: discarded), for example "fdsink fd=2".
set -eu
. "$(dirname "$0")/env.sh"
IN_PORT=${IN_PORT:-5004}
OUT_HOST=${OUT_HOST:-127.0.0.1}
OUT_PORT=${OUT_PORT:-5006}
CODEC=${CODEC:-pcmu}
DEVICE=${DEVICE:-cpu}
TEXT_SINK=${TEXT_SINK:-fakesink}
case "$CODEC" in
  pcmu)
    caps="application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0"
    depay="rtppcmudepay ! mulawdec"
    # 20 ms packets, as telephony expects (one 80 ms frame would otherwise be one packet).
    pay="audio/x-raw,rate=8000 ! mulawenc ! rtppcmupay min-ptime=20000000 max-ptime=20000000"
    ;;
  opus)
    caps="application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96"
    depay="rtpopusdepay ! opusdec"
    pay="audio/x-raw,rate=48000 ! opusenc ! rtpopuspay"
    ;;
  *)
    echo "rtp-gateway.sh: CODEC must be pcmu or opus, not '$CODEC'" >&2
    exit 2
    ;;
esac

# $depay, $pay and $TEXT_SINK are pipeline fragments, split into words on purpose.
# shellcheck disable=SC2086
exec gst-launch-1.0 -e \
  udpsrc port="$IN_PORT" caps="$caps" ! rtpjitterbuffer latency=60 ! $depay ! \
  audioconvert ! audioresample ! \
  moshibin model="$MOSHI_MODEL" weights="$WEIGHTS" device="$DEVICE" name=moshi ! \
  audioconvert ! audioresample ! $pay ! udpsink host="$OUT_HOST" port="$OUT_PORT" \
  moshi.text_src ! $TEXT_SINK
